"""NEPHELE_CSRF_TRUSTED_ORIGINS: given, it is used as is; unset, it is derived from the served
address (NEPHELE_ALLOWED_HOSTS and PORT), so forms post from wherever the portal is served."""

from __future__ import annotations

from portal.settings import csrf_trusted_origins


def test_given_origins_are_used_as_they_are() -> None:
    env = {"NEPHELE_CSRF_TRUSTED_ORIGINS": "https://cloud.example.org, ,http://10.0.0.5:9000", "PORT": "7000"}
    assert csrf_trusted_origins(env, ["anything"]) == ["https://cloud.example.org", "http://10.0.0.5:9000"]


def test_unset_they_follow_the_allowed_hosts_and_the_port() -> None:
    hosts = ["127.0.0.1", "localhost", "testserver", "cloud.example.org", ".example.org", "*", "::1"]
    assert csrf_trusted_origins({"PORT": "9000"}, hosts) == [
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "http://cloud.example.org:9000",
        "https://cloud.example.org",
        "http://[::1]:9000",
    ]
    assert csrf_trusted_origins({}, ["127.0.0.1"]) == ["http://127.0.0.1:8000"]  # the default port
