"""``nephele event list`` and ``--follow`` (polling ``events/?after=`` through the keyset
cursor) through the real entry point against a live server."""

from __future__ import annotations

import json
import queue
import signal
import threading
from typing import Any

from .conftest import nephele, ok_json, popen


def test_event_list_filters(cloud: dict[str, Any]) -> None:
    (vm,) = ok_json(cloud, "vm", "create", "web", "--template", str(cloud["template"]), "--hold")
    events = ok_json(cloud, "event", "list", "--object-type", "virtualmachine", "--object-id", str(vm["id"]))
    assert events and all(e["object_id"] == str(vm["id"]) for e in events)
    assert ok_json(cloud, "event", "list", "--type", "no.such.type.*") == []
    bad = nephele(cloud, "event", "list", "--since", "yesterday")
    assert bad.returncode == 1 and "field since" in bad.stderr, bad.stderr
    table = nephele(cloud, "event", "list")
    assert table.returncode == 0 and "virtualmachine" in table.stdout


def test_follow_prints_new_events_as_json_lines_until_interrupted(cloud: dict[str, Any]) -> None:
    (first,) = ok_json(cloud, "vm", "create", "one", "--template", str(cloud["template"]), "--hold")
    proc = popen(cloud, "-o", "json", "event", "list", "--follow", "--interval", "0.2", "--object-type",
                 "virtualmachine")  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        seen = [json.loads(lines.get(timeout=60))]  # the latest events first
        assert seen[0]["object_id"] == str(first["id"])
        (second,) = ok_json(cloud, "vm", "create", "two", "--template", str(cloud["template"]), "--hold")
        while not any(e["object_id"] == str(second["id"]) for e in seen):
            seen.append(json.loads(lines.get(timeout=60)))
        ids = [e["id"] for e in seen]
        assert ids == sorted(ids) and len(ids) == len(set(ids))  # oldest first, none twice
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
