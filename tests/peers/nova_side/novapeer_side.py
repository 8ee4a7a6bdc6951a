"""The pieces of a real-Nova peer that run inside the Nova venv (``tests/peers/nova.py`` starts
them; they import nothing of Nephele).

- ``filter_factory``: a paste filter standing in for keystonemiddleware's ``authtoken`` in
  nova-api's pipeline (nova 34 has no ``noauth2``): a request whose ``X-Auth-Token`` is the
  peer's token gets the identity headers Keystone would have set; any other gets 401.
- ``nova_api()`` / ``placement_api()``: the WSGI applications for gunicorn. Both services hand
  ``sys.argv`` to oslo.config, which exits on gunicorn's own arguments, so it is cut to the
  program name first; the configuration comes from ``OS_NOVA_CONFIG_DIR`` /
  ``OS_PLACEMENT_CONFIG_DIR``.
- ``python novapeer_side.py standins PORT IMAGE_ID``: one HTTP server answering what nova-api
  and nova-compute ask of Glance (``/image``: one public image and the image schema), Neutron
  (``/network``: no ports, networks or security groups) and Keystone (``/identity``: every
  project exists). 404s are text/plain: glanceclient's error parser fails on a JSON 404.
"""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ----------------------------------------------------------------------------- Keystone filter


class KeystoneStandIn:
    def __init__(self, app: Any, conf: dict[str, str]) -> None:
        self.app = app
        self.token = conf["token"]
        self.identity = {
            "HTTP_X_IDENTITY_STATUS": "Confirmed",
            "HTTP_X_USER_ID": conf["user_id"],
            "HTTP_X_USER_NAME": conf.get("user_name", "admin"),
            "HTTP_X_USER_DOMAIN_ID": "default",
            "HTTP_X_PROJECT_ID": conf["project_id"],
            "HTTP_X_PROJECT_NAME": conf.get("project_name", "admin"),
            "HTTP_X_PROJECT_DOMAIN_ID": "default",
            "HTTP_X_ROLES": "admin,member,reader",
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # what a client sends in identity headers is never trusted, as with authtoken
        for key in [
            k for k in environ if k.startswith(("HTTP_X_USER", "HTTP_X_PROJECT", "HTTP_X_ROLES", "HTTP_X_IDENTITY"))
        ]:
            del environ[key]
        if environ.get("HTTP_X_AUTH_TOKEN") != self.token:
            body = b'{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}'
            start_response(
                "401 Unauthorized", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        environ.update(self.identity)
        return self.app(environ, start_response)


def filter_factory(global_conf: dict[str, str], **local_conf: str) -> Any:
    conf = {**global_conf, **local_conf}
    return lambda app: KeystoneStandIn(app, conf)


# ----------------------------------------------------------------------------- WSGI apps


def nova_api() -> Any:
    sys.argv[1:] = []
    from nova.wsgi.osapi_compute import application

    return application


def placement_api() -> Any:
    sys.argv[1:] = []
    from placement.wsgi.api import application

    return application


# ----------------------------------------------------------------------------- HTTP stand-ins

STAMP = "2026-01-01T00:00:00Z"
IMAGE_SCHEMA = {
    "name": "image",
    "properties": {
        name: {"type": kind}
        for name, kind in {
            "id": "string",
            "name": ["null", "string"],
            "status": "string",
            "visibility": "string",
            "protected": "boolean",
            "os_hidden": "boolean",
            "checksum": ["null", "string"],
            "os_hash_algo": ["null", "string"],
            "os_hash_value": ["null", "string"],
            "owner": ["null", "string"],
            "size": ["null", "integer"],
            "virtual_size": ["null", "integer"],
            "min_ram": "integer",
            "min_disk": "integer",
            "container_format": ["null", "string"],
            "disk_format": ["null", "string"],
            "created_at": "string",
            "updated_at": "string",
            "tags": "array",
            "direct_url": "string",
            "locations": "array",
            "self": "string",
            "file": "string",
            "schema": "string",
        }.items()
    },  # fmt: skip
    "additionalProperties": {"type": "string"},
    "links": [
        {"href": "{self}", "rel": "self"},
        {"href": "{file}", "rel": "enclosure"},
        {"href": "{schema}", "rel": "describedby"},
    ],
}


def image(image_id: str) -> dict[str, Any]:
    return {
        "id": image_id, "name": "fake-image", "status": "active", "visibility": "public", "protected": False,
        "os_hidden": False, "checksum": None, "owner": None, "size": 1024, "virtual_size": None, "min_ram": 0,
        "min_disk": 0, "container_format": "bare", "disk_format": "raw", "created_at": STAMP, "updated_at": STAMP,
        "tags": [], "self": f"/v2/images/{image_id}", "file": f"/v2/images/{image_id}/file", "schema": "/v2/schemas/image",
    }  # fmt: skip


class StandIns(BaseHTTPRequestHandler):
    image_id = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def reply(self, status: int, body: Any = None) -> None:
        if status == 404:
            data, kind = b"404 Not Found\n", "text/plain"
        elif body is None:
            data, kind = b"", "application/json"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/image"):
            self.glance(path.removeprefix("/image"))
        elif path.startswith("/network"):
            self.neutron(path.removeprefix("/network"))
        elif path.startswith("/identity"):
            self.keystone(path.removeprefix("/identity"))
        else:
            self.reply(404)

    def do_DELETE(self) -> None:
        self.reply(204 if self.path.startswith("/network") else 404)

    def glance(self, path: str) -> None:
        if path == "/v2/schemas/image":
            self.reply(200, IMAGE_SCHEMA)
        elif path == f"/v2/images/{self.image_id}":
            self.reply(200, image(self.image_id))
        elif path == "/v2/images":
            self.reply(200, {"images": [image(self.image_id)], "schema": "/v2/schemas/images"})
        else:
            self.reply(404)

    def neutron(self, path: str) -> None:
        path = path.removeprefix("/v2.0").removesuffix(".json")
        if m := re.fullmatch(r"/quotas/([^/]+)(/details)?", path):
            limits = {k: -1 for k in ("network", "subnet", "port", "router", "floatingip", "security_group")}
            self.reply(200, {"quota": limits})
        elif m := re.fullmatch(r"/([a-z_-]+)", path):
            self.reply(200, {m[1]: []})
        else:
            self.reply(404)

    def keystone(self, path: str) -> None:
        if path in ("", "/v3"):
            self.reply(200, {"version": {"id": "v3.14", "status": "stable", "updated": STAMP, "links": [{"rel": "self", "href": f"http://{self.headers['Host']}/identity/v3/"}]}})  # fmt: skip
        elif m := re.fullmatch(r"/v3/projects/([^/]+)", path):
            self.reply(200, {"project": {"id": m[1], "name": m[1], "domain_id": "default", "enabled": True}})
        else:
            self.reply(404)


def main(argv: list[str]) -> None:
    if argv[:1] != ["standins"] or len(argv) != 3:
        raise SystemExit("usage: novapeer_side.py standins PORT IMAGE_ID")
    StandIns.image_id = argv[2]
    ThreadingHTTPServer(("127.0.0.1", int(argv[1])), StandIns).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
