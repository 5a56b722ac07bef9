"""AI dashboard metrics: bulk ingest, and time-bucketed series computed in SQL.

`dashboard_series` is one statement per backend: buckets are generated in SQL (so empty ones
are there too), and every statistic, p95 included, is aggregated by the database.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NotRequired, overload
from uuid import UUID

from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from stratus_sql.engine import Executor
from stratus_sql.errors import (
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    QueryTimeout,
    UsageError,
)
from stratus_sql.ids import uuid7, uuid7_batch
from stratus_sql.queries._input import uuid_arg
from stratus_sql.records import (
    Amount,
    Metric,
    MetricBucket,
    MetricSample,
    Moment,
    Periodo,
    Rate,
    StaleableSeries,
)
from stratus_sql.sqlfiles import load_queries

__all__ = ["PERIODS", "dashboard_series", "record_metric", "record_metrics"]

STATEMENTS = load_queries("metrics")

# period -> (number of buckets, bucket width in seconds)
PERIODS: dict[str, tuple[int, int]] = {
    "24h": (24, 3600),
    "7d": (28, 6 * 3600),
    "30d": (30, 24 * 3600),
}


class _SampleMapping(TypedDict):
    """A sample given as a mapping: the fields and rules of MetricSample, validated as a
    plain dict (twice as fast as building MetricSample instances, measured on bulk loads)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    user_id: UUID
    dashboard_id: NotRequired[UUID | None]
    ia_efficiency: Rate
    model_accuracy: Rate
    processing_time_ms: Amount
    memory_usage_mb: Amount
    error_rate: Rate
    timestamp: NotRequired[Moment | None]
    periodo: NotRequired[Periodo | None]


_MAPPINGS = TypeAdapter(list[_SampleMapping])


def _rows(items: list[Any], now: datetime) -> list[tuple[Any, ...]]:
    """The rows of `record_metrics`, validated: metric_id, user_id, dashboard_id,
    ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate,
    timestamp (default `now`), periodo; the statement's parameters, in order."""
    plain: list[tuple[int, Any]] = []
    for i, item in enumerate(items):
        if type(item) is dict or isinstance(
            item, Mapping
        ):  # the common case, without the slower ABC check
            plain.append((i, item))
        elif not isinstance(item, MetricSample):
            raise InvalidInput(
                f"samples[{i}]: expected a MetricSample or a mapping, not {type(item).__name__}"
            )
    try:
        checked = iter(_MAPPINGS.validate_python([m for _, m in plain]))
    except ValidationError as exc:
        error = exc.errors()[0]
        position, *field = error["loc"]
        where = f"samples[{plain[int(position)][0]}]"
        raise InvalidInput(f"{where}.{'.'.join(map(str, field))}: {error['msg']}") from None
    rows = []
    for metric_id, item in zip(uuid7_batch(len(items)), items, strict=True):
        if isinstance(item, MetricSample):
            rows.append(
                (metric_id, item.user_id, item.dashboard_id, item.ia_efficiency,
                 item.model_accuracy, item.processing_time_ms, item.memory_usage_mb,
                 item.error_rate, item.timestamp or now, item.periodo)
            )  # fmt: skip
        else:
            m = next(checked)
            rows.append(
                (metric_id, m["user_id"], m.get("dashboard_id"), m["ia_efficiency"],
                 m["model_accuracy"], m["processing_time_ms"], m["memory_usage_mb"],
                 m["error_rate"], m.get("timestamp") or now, m.get("periodo"))
            )  # fmt: skip
    return rows


async def record_metrics(db: Executor, samples: Iterable[MetricSample | Mapping[str, Any]]) -> int:
    """Store a batch of samples, all or nothing; returns how many were stored.

    Every sample is validated before anything is written: one bad sample rejects the batch
    with InvalidInput naming its index (`samples[3].error_rate: ...`). PostgreSQL loads the
    batch with binary COPY, SQLite with one executemany in one transaction. A sample naming a
    missing user or dashboard is NotFound, and nothing is stored.
    """
    if isinstance(samples, Mapping | str | bytes) or not isinstance(samples, Iterable):
        raise InvalidInput("samples: expected an iterable of MetricSample or mappings")
    rows = _rows(list(samples), datetime.now(UTC))
    return await db.copy(STATEMENTS.record_metrics, rows)


async def record_metric(db: Executor, **fields: Any) -> Metric:
    """Store one sample (the fields of `MetricSample`) and return it as stored."""
    try:
        sample = MetricSample.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None
    metric = await db.fetch_one(
        Metric,
        STATEMENTS.record_metric,
        metric_id=uuid7(),
        **sample.model_dump(exclude={"timestamp"}),
        timestamp=sample.timestamp or datetime.now(UTC),
    )
    if metric is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError("record_metric returned no row")
    return metric


@overload
async def dashboard_series(
    db: Executor,
    *,
    period: str = ...,
    user_id: UUID | str | None = ...,
    dashboard_id: UUID | str | None = ...,
    now: datetime | None = ...,
    allow_stale: Literal[False] = ...,
) -> list[MetricBucket]: ...


@overload
async def dashboard_series(
    db: Executor,
    *,
    period: str = ...,
    user_id: UUID | str | None = ...,
    dashboard_id: UUID | str | None = ...,
    now: datetime | None = ...,
    allow_stale: Literal[True],
) -> StaleableSeries: ...


async def dashboard_series(
    db: Executor,
    *,
    period: str = "24h",
    user_id: UUID | str | None = None,
    dashboard_id: UUID | str | None = None,
    now: datetime | None = None,
    allow_stale: bool = False,
) -> list[MetricBucket] | StaleableSeries:
    """The series of a period, every bucket present, oldest first.

    `24h`: 24 buckets of 1 hour; `7d`: 28 of 6 hours; `30d`: 30 of 1 day. The window is
    [now - period, now), and bucket i starts at now - period + i x width. Samples of one
    user, one dashboard, both, or all of them when neither is given.

    With `allow_stale=True` (on a Database, outside a transaction) the result comes wrapped
    in a `StaleableSeries`; when the database is unavailable (DatabaseUnavailable,
    QueryTimeout) it is the last good result of an earlier `allow_stale` call with the same
    arguments, marked `stale` with its age, and the error propagates when there is none.
    """
    if not isinstance(period, str) or period not in PERIODS:
        raise InvalidInput(f"period: {period!r:.30} is not one of {', '.join(PERIODS)}")
    if now is not None and (
        not isinstance(now, datetime) or now.tzinfo is None or not 2 <= now.year <= 9998
    ):
        raise InvalidInput("now: expected a timezone-aware datetime between the years 2 and 9998")
    if not isinstance(allow_stale, bool):
        raise InvalidInput(f"allow_stale: expected True or False, got {allow_stale!r:.30}")
    user = None if user_id is None else uuid_arg(user_id, "user_id")
    board = None if dashboard_id is None else uuid_arg(dashboard_id, "dashboard_id")
    if not allow_stale:
        return await _series(db, period, user, board, now)
    kept = _last_good_series(db)
    key = (period, user, board, now)
    try:
        buckets = await _series(db, period, user, board, now)
    except (DatabaseUnavailable, QueryTimeout):
        if key not in kept:
            raise
        at, buckets = kept[key]
        return StaleableSeries(buckets=buckets, stale=True, age_seconds=time.monotonic() - at)
    kept[key] = (time.monotonic(), buckets)
    kept.move_to_end(key)
    while len(kept) > _KEPT_SERIES:
        kept.popitem(last=False)
    return StaleableSeries(buckets=buckets, stale=False, age_seconds=0.0)


async def _series(
    db: Executor, period: str, user_id: UUID | None, dashboard_id: UUID | None, now: datetime | None
) -> list[MetricBucket]:
    buckets, width = PERIODS[period]
    if now is None:
        now = datetime.now(UTC)
    return await db.fetch_many(
        MetricBucket,
        STATEMENTS.dashboard_series,
        since=now - timedelta(seconds=buckets * width),
        now=now,
        bucket_seconds=width,
        buckets=buckets,
        user_id=user_id,
        dashboard_id=dashboard_id,
    )


_SeriesKey = tuple[str, UUID | None, UUID | None, datetime | None]
_KEPT_SERIES = 1000


class _KeptSeries(OrderedDict[_SeriesKey, tuple[float, list[MetricBucket]]]):
    """The last good series of one Database, for allow_stale; at most _KEPT_SERIES."""


def _last_good_series(db: Executor) -> _KeptSeries:
    if db.in_transaction:
        raise UsageError(
            "allow_stale needs a Database outside a transaction (a transaction cannot fall "
            "back to an earlier result)"
        )
    kept: _KeptSeries = db.database.attachments.setdefault(_KeptSeries, _KeptSeries())
    return kept
