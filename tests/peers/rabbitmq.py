"""A private RabbitMQ node's folder and environment (its own name, ports and data), for the
fault tier's broker and the Nova peer: Debian's ``rabbitmq-server`` run as root on loopback.
Standard library only, so any venv imports it."""

from __future__ import annotations

from pathlib import Path


def prepare_node(base: Path, nodename: str, amqp_port: int, dist_port: int) -> dict[str, str]:
    """Write the node's config under ``base`` and return the environment that starts it there
    (listening on 127.0.0.1 only, distribution included)."""
    (base / "mnesia").mkdir(parents=True, exist_ok=True)
    (base / "log").mkdir(exist_ok=True)
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{amqp_port}\n")
    (base / "plugins").write_text("[].\n")
    return {
        "HOME": str(base), "RABBITMQ_NODENAME": nodename,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": '-kernel inet_dist_use_interface "{127,0,0,1}"',
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "plugins"),
        "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "mnesia" / "feature_flags"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }  # fmt: skip
