"""Malformed input over every endpoint of the authorization matrix: wrong JSON types at every
field, huge numbers, NUL bytes, a JSON array instead of an object, a 10 MB body, absurd paging
parameters. Nothing answers 5xx, and a refused request changes no row, no quota and queues no
task. A new endpoint joins through its matrix row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import client_for

from . import test_authorization_matrix as matrix
from .test_authorization_matrix import MATRIX, _fill, _state

world = matrix.world  # the matrix's fixture: one object of every kind

BAD_VALUES: list[Any] = [[1, 2], {"a": 1}, 10**30, -(10**30), "\x00", "x" * 100_000, None, True, 1.5, "{P}"]
WRITES = [(m, p, b) for m, p, b, _e in MATRIX if m in ("POST", "PUT", "PATCH")]
LISTS = sorted({p for m, p, _b, _e in MATRIX if m == "GET" and not p.rstrip("/").endswith("}") and "schema" not in p})
PAGING = ["limit=99999999999999999999", "limit=-1", "limit=abc", "offset=-5", "offset=99999999999999999999",
          "ordering=%00", "cursor=%00garbage", "page=0", "id=abc", "state=%00"]  # fmt: skip


def _send(client: Any, method: str, path: str, raw: str, queued_ctx: Any) -> tuple[Any, list[Any]]:
    with queued_ctx() as queued:
        resp = client.generic(method, path, data=raw, content_type="application/json")
    return resp, list(queued)


def _check(resp: Any, before: Any, queued: list[Any], what: str) -> None:
    assert resp.status_code < 500, (what, resp.status_code, resp.content[:400])
    if resp.status_code >= 400:
        assert _state() == before, f"{what}: a refused request changed rows or quota usage"
        assert queued == [], f"{what}: a refused request queued a task"
        if resp.status_code == 400 and resp.headers.get("Content-Type", "").startswith("application/json"):
            assert "detail" in resp.json(), (what, resp.content[:300])


@pytest.mark.parametrize("method,path,body", WRITES, ids=[f"{m} {p}" for m, p, _b in WRITES])
def test_wrong_types_at_every_field_never_answer_5xx(
    method: str, path: str, body: Any, world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    ids = world["ids"]
    client = client_for(world["users"]["admin"])
    url = _fill(path, ids)
    good = _fill(body, ids) if body else {}
    cases: list[tuple[str, str]] = [
        ("array body", json.dumps([good])),
        ("string body", json.dumps("x")),
        ("number body", "1e400"),
        ("not JSON", "{not json"),
        ("NUL byte", '{"name": "a\\u0000b"}'),
    ]
    for field in good or {"name": None}:
        for bad in BAD_VALUES:
            value = _fill(bad, ids) if bad == "{P}" else bad
            cases.append((f"{field}={str(value)[:20]!r}", json.dumps({**good, field: value})))
    for what, raw in cases:
        before = _state()
        resp, queued = _send(client, method, url, raw, django_capture_on_commit_callbacks)
        _check(resp, before, queued, f"{method} {path} {what}")


def test_a_10_mb_body_is_refused_without_5xx(world: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    client = client_for(world["users"]["admin"])
    before = _state()
    raw = json.dumps({"name": "big", "description": "x" * (10 * 1024 * 1024)})
    resp, queued = _send(client, "POST", "/api/v1/templates/", raw, django_capture_on_commit_callbacks)
    assert 400 <= resp.status_code < 500, resp.status_code
    _check(resp, before, queued, "10 MB body")


@pytest.mark.parametrize("method,path,body", [("GET", p, None) for p in LISTS], ids=LISTS)  # the world's key
def test_absurd_paging_and_filters_never_answer_5xx(method: str, path: str, body: None, world: dict[str, Any]) -> None:
    client = client_for(world["users"]["admin"])
    url = _fill(path, world["ids"])
    for query in PAGING:
        resp = client.get(f"{url}?{query}")
        assert resp.status_code < 500, (url, query, resp.status_code, resp.content[:400])
