"""The time-series store: batched ingest, roll-ups with retention, chart queries.

Raw samples are loaded with PostgreSQL's COPY (bulk inserts elsewhere); a periodic roll-up
folds complete minutes into per-minute averages and complete hours into per-hour ones, then
drops what is past retention. A chart query picks the finest resolution its range allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Avg, Count, Max, Min
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from .models import Rollup, Sample

Row = tuple[datetime, int, int, int, float]  # ts, kind, object_id, metric, value


def ingest(rows: Sequence[Row]) -> int:
    """Store raw samples in one batch."""
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cur,
            cur.connection.cursor().copy(
                "COPY monitoring_sample (ts, kind, object_id, metric, value) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
    else:
        Sample.objects.bulk_create([Sample(ts=t, kind=k, object_id=o, metric=m, value=v) for t, k, o, m, v in rows])
    return len(rows)


def series(
    kind: int, object_id: int, metric: int, since: datetime, until: datetime | None = None
) -> tuple[int, list[tuple[datetime, float]]]:
    """(resolution in seconds — 0 for raw —, [(time, value)]) for a chart of [since, until]."""
    until = until or timezone.now()
    span = until - since
    if span <= timedelta(seconds=settings.NEPHELE_RAW_RETENTION_S):
        qs = Sample.objects.filter(kind=kind, object_id=object_id, metric=metric, ts__gte=since, ts__lte=until)
        return 0, list(qs.order_by("ts").values_list("ts", "value"))
    resolution = 60 if span <= timedelta(days=3) else 3600
    qs = Rollup.objects.filter(
        resolution=resolution, kind=kind, object_id=object_id, metric=metric, bucket__gte=since, bucket__lte=until
    )
    return resolution, list(qs.order_by("bucket").values_list("bucket", "avg"))


def _fold(source: Iterable[dict[str, object]], resolution: int) -> int:
    rows = [
        Rollup(
            resolution=resolution,
            bucket=r["bucket"],
            kind=r["kind"],
            object_id=r["object_id"],
            metric=r["metric"],
            avg=r["avg"],
            min=r["min"],
            max=r["max"],
            n=r["n"],
        )  # fmt: skip
        for r in source
    ]
    Rollup.objects.bulk_create(rows, ignore_conflicts=True, batch_size=5000)
    return len(rows)


@transaction.atomic
def rollup(now: datetime | None = None) -> dict[str, int]:
    """Fold complete minutes and hours, then apply retention. Idempotent."""
    now = now or timezone.now()
    minute = now.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    done_m = Rollup.objects.filter(resolution=60).order_by("-bucket").values_list("bucket", flat=True).first()
    raw = Sample.objects.filter(ts__lt=minute)
    if done_m is not None:
        raw = raw.filter(ts__gte=done_m + timedelta(minutes=1))
    minutes = _fold(
        raw.annotate(bucket=TruncMinute("ts")).values("bucket", "kind", "object_id", "metric")
        .annotate(avg=Avg("value"), min=Min("value"), max=Max("value"), n=Count("id")),
        60,
    )  # fmt: skip
    done_h = Rollup.objects.filter(resolution=3600).order_by("-bucket").values_list("bucket", flat=True).first()
    per_min = Rollup.objects.filter(resolution=60, bucket__lt=hour)
    if done_h is not None:
        per_min = per_min.filter(bucket__gte=done_h + timedelta(hours=1))
    hours = _fold(_hour_rows(per_min), 3600)
    raw_deleted, _ = Sample.objects.filter(ts__lt=now - timedelta(seconds=settings.NEPHELE_RAW_RETENTION_S)).delete()
    Rollup.objects.filter(resolution=60, bucket__lt=now - timedelta(days=7)).delete()
    Rollup.objects.filter(resolution=3600, bucket__lt=now - timedelta(days=400)).delete()
    return {"minutes": minutes, "hours": hours, "raw_deleted": raw_deleted}


def _hour_rows(per_min: object) -> list[dict[str, object]]:
    from django.db.models import QuerySet

    assert isinstance(per_min, QuerySet)
    return [
        {**r, "bucket": r.pop("h")}
        for r in per_min.annotate(h=TruncHour("bucket")).values("h", "kind", "object_id", "metric")
        .annotate(avg=Avg("avg"), min=Min("min"), max=Max("max"), n=Count("id"))
    ]  # fmt: skip
