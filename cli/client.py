"""The CLI's side of the REST API: profiles on disk and one HTTP session per command.

The CLI never imports Django or the ORM: it talks to ``/api/v1/`` like any other client, so it
works from any machine. Profiles (URL, token, default project) live in
``$NEPHELE_CONFIG`` or ``~/.config/nephele/config.json``, written with mode 0600.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

#: exit codes scripts can rely on (docs/cli.md)
OK, API_ERROR, USAGE, NOT_FOUND, CONFLICT, AUTH, UNREACHABLE, TIMED_OUT = 0, 1, 2, 3, 4, 5, 6, 7
#: a ``--wait`` that saw the operation fail (the object ended in an error state) leaves with API_ERROR
TIMEOUT_S = 30
RETRIES = 2


class CliError(Exception):
    """An error to print (with the field at fault) and the exit code to leave with."""

    def __init__(self, message: str, code: int = API_ERROR, field: str = "") -> None:
        super().__init__(message)
        self.message, self.code, self.field = message, code, field


def config_path() -> Path:
    return Path(os.environ.get("NEPHELE_CONFIG") or Path.home() / ".config" / "nephele" / "config.json")


def load_config() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {"current": "default", "profiles": {}}
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def save_config(config: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


@dataclass
class Profile:
    name: str
    url: str
    token: str
    project: int | None = None


def profile(name: str | None) -> Profile:
    config = load_config()
    name = name or os.environ.get("NEPHELE_PROFILE") or config.get("current") or "default"
    entry = config.get("profiles", {}).get(name)
    url = os.environ.get("NEPHELE_URL") or (entry or {}).get("url")
    token = os.environ.get("NEPHELE_TOKEN") or (entry or {}).get("token")
    if not url or not token:
        raise CliError(f"not logged in (profile {name!r}): run `nephele login`", AUTH)
    return Profile(name, url.rstrip("/"), token, (entry or {}).get("project"))


def _retry_after(resp: requests.Response) -> float | None:
    """Seconds to wait before trying again (429 and 503 with ``Retry-After``, at most 10), or None."""
    if resp.status_code not in (429, 503):
        return None
    value = resp.headers.get("Retry-After", "")
    return min(float(value), 10.0) if value.isdigit() else None


def _error(resp: requests.Response) -> CliError:
    try:
        body = resp.json()
    except ValueError:
        body = {"detail": resp.text[:300] or resp.reason}
    detail = body.get("detail", body) if isinstance(body, dict) else body
    field = body.get("field", "") if isinstance(body, dict) else ""
    code = {401: AUTH, 403: AUTH, 404: NOT_FOUND, 409: CONFLICT}.get(resp.status_code, API_ERROR)
    return CliError(f"{resp.status_code}: {detail}", code, field)


class Api:
    def __init__(self, prof: Profile) -> None:
        self.profile = prof
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {prof.token}", "Accept": "application/json"})

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
        data: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> Any:  # fmt: skip
        url = path if path.startswith(("http://", "https://")) else f"{self.profile.url}/api/v1/{path.lstrip('/')}"
        for attempt in range(RETRIES + 1):
            try:
                resp = self.session.request(
                    method, url, json=body, params=params, data=data, headers=headers, timeout=TIMEOUT_S
                )
            except requests.RequestException as exc:
                raise CliError(f"cannot reach {self.profile.url}: {exc.__class__.__name__}", UNREACHABLE) from None
            wait = _retry_after(resp)
            if wait is None or attempt == RETRIES:
                break
            time.sleep(wait)  # 429 (rate limit) or 503 (busy): wait as told, then once more
        if resp.status_code >= 400:
            raise _error(resp)
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, body)

    def put_bytes(self, path: str, data: bytes, content_range: str) -> Any:
        """One chunk of an upload (``Content-Range: bytes START-END/TOTAL``)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Range": content_range}
        return self.request("PUT", path, data=data, headers=headers)

    def list(self, path: str, limit: int = 1000, **params: Any) -> list[dict[str, Any]]:
        page = self.get(path, limit=limit, **params)
        return page["results"] if isinstance(page, dict) and "results" in page else page  # type: ignore[no-any-return]

    def pages(self, path: str, limit: int = 1000, **params: Any) -> Iterator[dict[str, Any]]:
        """Every row, oldest first, through the API's keyset cursor (``?cursor=``, then ``next``)."""
        page = self.get(path, limit=limit, cursor="", **params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self.request("GET", page["next"])


def token_from_password(url: str, username: str, password: str, name: str, days: int | None) -> str:
    """Sign in to the portal with the form (a session), then make an API token with it."""
    s = requests.Session()
    try:
        s.get(f"{url}/login/", timeout=TIMEOUT_S)
        csrf = s.cookies.get("csrftoken", "")
        resp = s.post(
            f"{url}/login/", data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{url}/login/"}, timeout=TIMEOUT_S, allow_redirects=False,
        )  # fmt: skip
    except requests.RequestException as exc:
        raise CliError(f"cannot reach {url}: {exc.__class__.__name__}", UNREACHABLE) from None
    if resp.status_code != 302 or "sessionid" not in s.cookies:
        message = re.sub(r"\s+", " ", " ".join(re.findall(r'role="alert"[^>]*>([^<]+)<', resp.text))).strip()
        raise CliError(f"sign-in refused: {message or 'wrong user name or password'}", AUTH)
    body: dict[str, Any] = {"name": name}
    if days is not None:
        body["days"] = days
    made = s.post(
        f"{url}/api/v1/tokens/", json=body, timeout=TIMEOUT_S,
        headers={"X-CSRFToken": s.cookies.get("csrftoken") or "", "Referer": f"{url}/"},
    )  # fmt: skip
    if made.status_code != 201:
        raise _error(made)
    return str(made.json()["token"])
