"""How `metrics.dashboard_series` reads a series: every sample of its window, or the
hourly rollups of its whole hours with the samples of the hours its bucket edges cut, the
p95 estimated from their sketches (`_sketch`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from stratus_sql.engine import Executor
from stratus_sql.errors import DatabaseError, SamplesPruned
from stratus_sql.queries import _sketch
from stratus_sql.records import MetricBucket, SeriesBucket
from stratus_sql.sqlfiles import NamedStatement

__all__ = ["SKETCH_TAIL", "read_series"]


async def read_series(
    db: Executor,
    rollup_statement: NamedStatement,
    exact_statement: NamedStatement,
    shape: tuple[int, int],
    user_id: UUID | None,
    dashboard_id: UUID | None,
    now: datetime | None,
    exact: bool,
) -> list[MetricBucket]:
    """The buckets of a series of `shape` (how many buckets, their width in seconds) up
    to `now` (default: the current time), read by `exact_statement` (every sample of the
    window) with `exact` or when the samples are cheaper, else by `rollup_statement`."""
    buckets, width = shape
    # In UTC: a period is that many hours of elapsed time, whatever daylight saving does to
    # the caller's clock.
    now = datetime.now(UTC) if now is None else now.astimezone(UTC)
    since = now - timedelta(seconds=buckets * width)
    args = {
        "since": since,
        "now": now,
        "bucket_seconds": width,
        "buckets": buckets,
        "user_id": user_id,
        "dashboard_id": dashboard_id,
    }
    # Hourly buckets off the hour hold no whole hour: every sample is read either way, and
    # reading them for the exact statistics is the cheaper (unless they were pruned).
    from_samples = exact or (
        width == 3600 and (now.minute, now.second, now.microsecond) != (0, 0, 0)
    )
    if from_samples:
        rows = await db.fetch_many(SeriesBucket, exact_statement, **args)
        kept_from = rows[0].pruned_before if rows else None
        if kept_from is not None and kept_from > since:
            if exact:
                raise SamplesPruned(
                    f"the samples before {kept_from:%Y-%m-%d} were pruned: exact=True cannot "
                    f"compute a series from {since:%Y-%m-%d %H:%M}; the default reads the "
                    "rollups",
                    kept_from,
                )
            from_samples = False
    if from_samples:
        return [_bucket(row, row.processing_time_p95_ms) for row in rows]
    return await _from_rollups(db, rollup_statement, args)


# How many of an hour's sketch bins (its largest) the series reads first: p95 needs the
# counts above it only, so unless an hour's lower bins reach up to it (a much slower hour
# than the rest of its bucket) the result is the whole sketches'; when they do, the series
# is read again with every bin. 32 bins span a factor of 1.9.
SKETCH_TAIL = 32
_WHOLE_SKETCHES = 2**31 - 1


async def _from_rollups(
    db: Executor, statement: NamedStatement, args: dict[str, Any]
) -> list[MetricBucket]:
    for tail in (SKETCH_TAIL, _WHOLE_SKETCHES):
        rows = await db.fetch_many(SeriesBucket, statement, **args, sketch_tail=tail)
        try:
            return [
                _bucket(
                    row,
                    _sketch.p95(
                        row.sketch_bins or [],
                        row.sketch_counts or [],
                        row.samples,
                        row.sketch_complete_from,
                    ),
                )
                for row in rows
            ]
        except _sketch.Incomplete:
            continue
    raise DatabaseError(
        "dashboard_series: the rollups' sketches do not add up to their samples; "
        "run stratus-sql metrics rebuild-rollups"
    )


def _bucket(row: SeriesBucket, p95: float | None) -> MetricBucket:
    fields = row.model_dump(
        exclude={"sketch_bins", "sketch_counts", "sketch_complete_from", "pruned_before"}
    )
    fields["processing_time_p95_ms"] = p95
    return MetricBucket.model_construct(**fields)
