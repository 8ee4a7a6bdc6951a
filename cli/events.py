"""``nephele event list [--follow]``: the event stream.

``--follow`` polls the API: after the latest events it asks for ``events/?after=<last id>``
through the keyset cursor (``?cursor=``, oldest first, following ``next``), so no event is
skipped or printed twice however many arrive between two polls. (The websocket ``ws/live/``
carries VM and host state for the browser's session, not the event stream, and takes no API
token.) Each event is one line as it arrives: text in table mode, one JSON object per line
with ``-o json`` (JSON Lines), one YAML document each with ``-o yaml``. Ctrl-C ends it (130).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from .common import Output, api, compact, project_id, run, show, state
from .resources import typer_for

event_app = typer_for("event")
COLUMNS = [("id", "ID"), ("created_at", "Time"), ("type", "Type"), ("object_type", "Object"),
           ("object_id", "Object id"), ("object_name", "Name"), ("project", "Project"), ("actor", "Actor")]  # fmt: skip


def _line(event: dict[str, Any]) -> str:
    if state.output == Output.json:
        return json.dumps(event)
    if state.output == Output.yaml:
        import yaml

        return "---\n" + yaml.safe_dump(event, sort_keys=False).rstrip("\n")
    what = f"{event['object_type']} {event['object_id']}" + (
        f" ({event['object_name']})" if event["object_name"] else ""
    )
    return f"{event['id']:>8}  {event['created_at']}  {event['type']:<32}  {what}  by {event['actor'] or '—'}"


@event_app.command("list")
def event_list(
    event_type: Annotated[
        str | None, typer.Option("--type", help="exact, or a prefix ending in . or *: virtualmachine.state.*")
    ] = None,
    object_type: Annotated[str | None, typer.Option("--object-type", help="e.g. virtualmachine, host")] = None,
    object_id: Annotated[int | None, typer.Option("--object-id")] = None,
    actor: Annotated[str | None, typer.Option(help="the user name")] = None,
    since: Annotated[str | None, typer.Option(help="an ISO 8601 time, e.g. 2026-12-04T10:00Z")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many (newest first)")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="then print new events as they come")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="--follow: seconds between polls")] = 2.0,
) -> None:
    """Recent events of your projects (of --project when given), newest first; --follow streams."""

    def do() -> None:
        a = api()
        filters = compact(type=event_type, object_type=object_type, object_id=object_id, actor=actor, since=since,
                          project=project_id(a))  # fmt: skip
        latest = a.list("events/", limit=limit, **filters)
        if not follow:
            show(latest, COLUMNS)
            return
        last = max((e["id"] for e in latest), default=0)
        for event in reversed(latest):
            print(_line(event), flush=True)
        filters.pop("since", None)
        while True:
            for event in a.pages("events/", after=last, **filters):
                print(_line(event), flush=True)
                last = max(last, event["id"])
            time.sleep(interval)

    run(do)
