"""Rows written together (issue 13): a sweep's chunk inserts its state changes, events and
outbox rows in one statement per table, a failed item leaves none of its rows, one relay per
commit publishes the chunk's messages (one render for all of them), and a poison row is kept
while the others go."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.events import emit
from monitoring.models import Event
from portal import outbox, periodic
from portal.models import OutboxMessage

pytestmark = pytest.mark.django_db

QUEUE = "tests-bulk-outbox"


@pytest.fixture
def broker_queue() -> Any:
    yield QUEUE
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(QUEUE)


def test_a_chunk_inserts_each_table_once_and_drops_a_failed_items_rows(project: Any) -> None:
    def work(i: int) -> None:
        emit("tests.bulk.item", project, index=i)
        if i == 3:
            raise RuntimeError("poison")

    with CaptureQueriesContext(connection) as ctx:
        sweep = periodic.each("bulk-test", list(range(6)), work, chunk=10)
    assert sweep.done == 5 and list(sweep.failed) == ["3"]
    inserts = [q for q in ctx.captured_queries if q["sql"].startswith('INSERT INTO "monitoring_event"')]
    assert len(inserts) == 1, "one INSERT for the chunk's events"
    kept = sorted(e.payload["index"] for e in Event.objects.filter(type="tests.bulk.item"))
    assert kept == [0, 1, 2, 4, 5], "the failed item's event is not written"


def test_without_a_chunk_rows_are_written_at_once(project: Any) -> None:
    event = emit("tests.bulk.single", project)
    assert event.pk is not None and Event.objects.filter(pk=event.pk).exists()


def test_one_relay_per_commit_renders_the_rows_together(
    django_capture_on_commit_callbacks: Any, broker_queue: str
) -> None:
    calls: list[list[list[Any]]] = []

    def many(rows: list[list[Any]]) -> list[Any]:
        calls.append(rows)
        return [(f"rendered-{r[0]}",) for r in rows]

    outbox.register_renderer("tests.bulk_probe", lambda n: (f"one-{n}",), many=many)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            for n in range(3):
                outbox.send("tests.bulk_probe", (n,), queue=broker_queue)
        assert calls == [[[0], [1], [2]]], "one render for the commit's rows"
        assert not OutboxMessage.objects.filter(task="tests.bulk_probe").exists(), "sent and deleted"
        assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(broker_queue) == 3
    finally:
        outbox.RENDERERS.pop("tests.bulk_probe", None)
        outbox.BATCH_RENDERERS.pop("tests.bulk_probe", None)


def test_a_poison_row_is_kept_and_the_others_are_sent(
    django_capture_on_commit_callbacks: Any, broker_queue: str
) -> None:
    def one(n: int) -> tuple[str]:
        if n == 1:
            raise ValueError("cannot render")
        return (f"one-{n}",)

    def many(rows: list[list[Any]]) -> list[Any]:
        raise ValueError("the batch fails as a whole")

    outbox.register_renderer("tests.bulk_poison", one, many=many)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            for n in range(3):
                outbox.send("tests.bulk_poison", (n,), queue=broker_queue)
        left = list(OutboxMessage.objects.filter(task="tests.bulk_poison").values_list("args", flat=True))
        assert left == [[1]], "only the poison row stays, for the periodic relay"
        assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(broker_queue) == 2
    finally:
        outbox.RENDERERS.pop("tests.bulk_poison", None)
        outbox.BATCH_RENDERERS.pop("tests.bulk_poison", None)
