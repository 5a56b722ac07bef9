"""AI dashboard metrics: bulk ingest, and time-bucketed series computed in SQL.

`dashboard_series` is one statement per backend: buckets are generated in SQL (so empty ones
are there too), and every statistic, p95 included, is aggregated by the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from stratus_sql.backends.base import Executor
from stratus_sql.errors import DatabaseError, InvalidInput
from stratus_sql.ids import uuid7
from stratus_sql.queries._input import uuid_arg
from stratus_sql.records import Metric, MetricBucket, MetricSample
from stratus_sql.sqlfiles import load_queries

__all__ = ["PERIODS", "dashboard_series", "record_metric", "record_metrics"]

STATEMENTS = load_queries("metrics")

# period -> (number of buckets, bucket width in seconds)
PERIODS: dict[str, tuple[int, int]] = {
    "24h": (24, 3600),
    "7d": (28, 6 * 3600),
    "30d": (30, 24 * 3600),
}


def _sample(value: object, where: str) -> MetricSample:
    if isinstance(value, MetricSample):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f"{where}: expected a MetricSample or a mapping, not {type(value).__name__}"
        )
    try:
        return MetricSample.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise InvalidInput(f"{where}.{field}: {error['msg']}") from None


def _row(sample: MetricSample, now: datetime) -> dict[str, Any]:
    return {
        "metric_id": uuid7(),
        "user_id": sample.user_id,
        "dashboard_id": sample.dashboard_id,
        "ia_efficiency": sample.ia_efficiency,
        "model_accuracy": sample.model_accuracy,
        "processing_time_ms": sample.processing_time_ms,
        "memory_usage_mb": sample.memory_usage_mb,
        "error_rate": sample.error_rate,
        "timestamp": sample.timestamp or now,
        "periodo": sample.periodo,
    }


async def record_metrics(db: Executor, samples: Iterable[MetricSample | Mapping[str, Any]]) -> int:
    """Store a batch of samples, all or nothing; returns how many were stored.

    Every sample is validated before anything is written: one bad sample rejects the batch
    with InvalidInput naming its index (`samples[3].error_rate: ...`). PostgreSQL loads the
    batch with binary COPY, SQLite with one executemany in one transaction. A sample naming a
    missing user or dashboard is NotFound, and nothing is stored.
    """
    if isinstance(samples, Mapping | str | bytes) or not isinstance(samples, Iterable):
        raise InvalidInput("samples: expected an iterable of MetricSample or mappings")
    now = datetime.now(UTC)
    rows = [_row(_sample(s, f"samples[{i}]"), now) for i, s in enumerate(samples)]
    return await db.copy(STATEMENTS.record_metrics, rows)


async def record_metric(db: Executor, **fields: Any) -> Metric:
    """Store one sample (the fields of `MetricSample`) and return it as stored."""
    row = _row(_sample(fields, "sample"), datetime.now(UTC))
    metric = await db.fetch_one(Metric, STATEMENTS.record_metric, **row)
    if metric is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError("record_metric returned no row")
    return metric


async def dashboard_series(
    db: Executor,
    *,
    period: str = "24h",
    user_id: UUID | str | None = None,
    dashboard_id: UUID | str | None = None,
    now: datetime | None = None,
) -> list[MetricBucket]:
    """The series of a period, every bucket present, oldest first.

    `24h`: 24 buckets of 1 hour; `7d`: 28 of 6 hours; `30d`: 30 of 1 day. The window is
    [now - period, now), and bucket i starts at now - period + i x width. Samples of one
    user, one dashboard, both, or all of them when neither is given.
    """
    if period not in PERIODS:
        raise InvalidInput(f"period: {period!r} is not one of {', '.join(PERIODS)}")
    if now is None:
        now = datetime.now(UTC)
    elif not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidInput("now: expected a timezone-aware datetime")
    buckets, width = PERIODS[period]
    return await db.fetch_many(
        MetricBucket,
        STATEMENTS.dashboard_series,
        since=now - timedelta(seconds=buckets * width),
        now=now,
        bucket_seconds=width,
        buckets=buckets,
        user_id=None if user_id is None else uuid_arg(user_id, "user_id"),
        dashboard_id=None if dashboard_id is None else uuid_arg(dashboard_id, "dashboard_id"),
    )
