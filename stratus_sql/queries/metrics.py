"""AI dashboard metrics: bulk ingest, hourly rollups, and time-bucketed series in SQL.

Every write of samples adds them to hourly rollups in the same transaction (PostgreSQL's
trigger metrics_roll_up; on SQLite the statement `roll_up`). `dashboard_series` is one
statement per backend: buckets are generated in SQL (so empty ones are there too); by
default each reads the rollups of its whole hours and the samples of the hours its edges cut
(on PostgreSQL of one side of each edge, the other side being the hour's rollup less them),
and with `exact=True` every sample of the window. Retention (`prune`) drops raw months and
keeps the rollups; `rebuild_rollups` recomputes them from the samples.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal, overload
from uuid import UUID

from pydantic import ValidationError

from stratus_sql.dialects import base_chain
from stratus_sql.engine import Actor, Executor
from stratus_sql.errors import (
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    QueryTimeout,
    UsageError,
)
from stratus_sql.ids import uuid7
from stratus_sql.queries._input import int_arg, moment_arg, month_arg, uuid_arg
from stratus_sql.queries._samples import sample_rows
from stratus_sql.queries._series import read_series
from stratus_sql.records import (
    Metric,
    MetricBucket,
    MetricSample,
    StaleableSeries,
)
from stratus_sql.sqlfiles import load_queries

__all__ = [
    "PERIODS",
    "dashboard_series",
    "maintain",
    "prune",
    "rebuild_rollups",
    "record_metric",
    "record_metrics",
]

STATEMENTS = load_queries("metrics")

# period -> (number of buckets, bucket width in seconds)
PERIODS: dict[str, tuple[int, int]] = {
    "24h": (24, 3600),
    "7d": (28, 6 * 3600),
    "30d": (30, 24 * 3600),
}


async def record_metrics(db: Executor, samples: Iterable[MetricSample | Mapping[str, Any]]) -> int:
    """Store a batch of samples, all or nothing; returns how many were stored.

    Every sample is validated before anything is written: one bad sample rejects the batch
    with InvalidInput naming its index (`samples[3].error_rate: ...`). PostgreSQL loads the
    batch with binary COPY, SQLite with one executemany in one transaction. A sample naming a
    missing user or dashboard is NotFound, and nothing is stored. The samples are in the
    hourly rollups when it returns, as part of the same transaction.

    Statements: `record_metrics`; on SQLite, around it, `rollup_high_water` and `roll_up`.
    """
    if isinstance(samples, Mapping | str | bytes) or not isinstance(samples, Iterable):
        raise InvalidInput("samples: expected an iterable of MetricSample or mappings")
    rows = sample_rows(list(samples), datetime.now(UTC))
    if _rolled_up_by_trigger(db):
        return await db.copy(STATEMENTS.record_metrics, rows)
    async with db.transaction() as tx:
        after = await tx.fetch_scalar(STATEMENTS.rollup_high_water)
        stored = await tx.copy(STATEMENTS.record_metrics, rows)
        await tx.execute_rows(STATEMENTS.roll_up, after=after, from_hour=None)
    return stored


async def record_metric(db: Executor, **fields: Any) -> Metric:
    """Store one sample (the fields of `MetricSample`) and return it as stored; it is in the
    hourly rollups as part of the same transaction.

    Statements: `record_metric`; on SQLite, around it, `rollup_high_water` and `roll_up`.
    """
    try:
        sample = MetricSample.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None
    values = {
        "metric_id": uuid7(),
        **sample.model_dump(exclude={"timestamp"}),
        "timestamp": sample.timestamp or datetime.now(UTC),
    }
    if _rolled_up_by_trigger(db):
        metric = await db.fetch_one(Metric, STATEMENTS.record_metric, **values)
    else:
        async with db.transaction() as tx:
            after = await tx.fetch_scalar(STATEMENTS.rollup_high_water)
            metric = await tx.fetch_one(Metric, STATEMENTS.record_metric, **values)
            await tx.execute_rows(STATEMENTS.roll_up, after=after, from_hour=None)
    if metric is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError("record_metric returned no row")
    return metric


def _rolled_up_by_trigger(db: Executor) -> bool:
    """Whether the database adds samples to the rollups itself (PostgreSQL's trigger)."""
    return base_chain(db.dialect)[-1].name == "postgres"


def _moment(value: datetime | str | None) -> datetime | None:
    """A timestamp as a scalar statement returns it (ISO text on SQLite)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def maintain(db: Executor, *, months_ahead: int = 3) -> int:
    """Make the monthly partitions of metrics up to `months_ahead` months from now, and
    those of the months whose samples sit in the default partition (PostgreSQL; SQLite has
    one table); returns how many were new. `stratus-sql migrate` and `maintain` run it."""
    months_ahead = int_arg(months_ahead, "months_ahead", 0, 120)
    return int(await db.fetch_scalar(STATEMENTS.maintain, months_ahead=months_ahead))


_PRUNE_BATCH = 10_000


async def prune(db: Executor, *, before: date) -> int:
    """Delete the raw samples before `before` (the first day of a month, not later than this
    month's); returns how many went. The rollups stay, so series still answer over the
    pruned months (from the rollups alone), and `dashboard_series(..., exact=True)` over
    them raises SamplesPruned.

    PostgreSQL drops whole monthly partitions in one transaction. SQLite deletes in batches
    of 10,000 samples, a transaction each, so writers wait only for one batch; the start of
    the samples kept is recorded first, so a series never mistakes a half-pruned month for
    a complete one.

    Statements: `prune` (the partitions, and where the samples kept start), then
    `rollup_high_water` and `prune_batch` until a batch comes back short.
    """
    before = month_arg(before, "before")
    if db.in_transaction:
        raise UsageError("prune commits batch by batch: call it on a Database, not a transaction")
    cutoff = datetime(before.year, before.month, 1, tzinfo=UTC)
    removed = int(await db.fetch_scalar(STATEMENTS.prune, before=cutoff))
    high_water = int(await db.fetch_scalar(STATEMENTS.rollup_high_water))
    for _ in range(high_water // _PRUNE_BATCH + 2):  # rowids up to high_water, at most
        gone = await db.execute_rows(
            STATEMENTS.prune_batch, before=cutoff, high_water=high_water, batch=_PRUNE_BATCH
        )
        removed += gone
        if gone < _PRUNE_BATCH:
            break
    return removed


async def rebuild_rollups(db: Executor, *, since: datetime | None = None) -> int:
    """Recompute the hourly rollups of the hours from `since` (default: all) from the
    samples, in one transaction; returns how many rollup rows it wrote. For samples imported
    or changed behind the layer's back (with the trigger disabled, say). Hours before the
    samples kept (after a prune) keep their rollups. Writers wait until it commits.

    Statements: `rebuild_rollups` on PostgreSQL; on SQLite `retention`, `clear_rollups`
    and `roll_up`.
    """
    if since is not None:
        moment_arg(since, "since")
    if _rolled_up_by_trigger(db):
        return int(await db.fetch_scalar(STATEMENTS.rebuild_rollups, since=since))
    async with db.transaction() as tx:
        start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0) if since else None
        kept_from = _moment(await tx.fetch_scalar(STATEMENTS.retention))
        if kept_from is not None and (start is None or start < kept_from):
            start = kept_from
        await tx.execute_rows(STATEMENTS.clear_rollups, from_hour=start)
        return await tx.execute_rows(STATEMENTS.roll_up, after=0, from_hour=start)


@overload
async def dashboard_series(
    db: Executor,
    *,
    period: str = ...,
    user_id: UUID | str | None = ...,
    dashboard_id: UUID | str | None = ...,
    now: datetime | None = ...,
    allow_stale: Literal[False] = ...,
    exact: bool = ...,
    actor: Actor | None = ...,
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
    exact: bool = ...,
    actor: Actor | None = ...,
) -> StaleableSeries: ...


async def dashboard_series(
    db: Executor,
    *,
    period: str = "24h",
    user_id: UUID | str | None = None,
    dashboard_id: UUID | str | None = None,
    now: datetime | None = None,
    allow_stale: bool = False,
    exact: bool = False,
    actor: Actor | None = None,
) -> list[MetricBucket] | StaleableSeries:
    """The series of a period, every bucket present, oldest first.

    `24h`: 24 buckets of 1 hour; `7d`: 28 of 6 hours; `30d`: 30 of 1 day. The window is
    [now - period, now), and bucket i starts at now - period + i x width. Samples of one
    user, one dashboard, both, or all of them when neither is given.

    By default a bucket reads the hourly rollups of the whole hours inside it and the samples
    of the hours its edges cut: `samples`, the means and `error_rate_max` are those of the
    samples (to float rounding), and `processing_time_p95_ms` is estimated from the merged
    sketches, within 1% of percentile_cont over the samples. Over pruned months the rollups
    answer alone, and an hour a bucket edge cuts counts whole in the bucket where it starts.
    `exact=True` computes every statistic from the samples (p95 by percentile_cont), and
    raises SamplesPruned when the window reaches back before the samples kept.

    Statements: `dashboard_series` (a second time with whole sketches when the top bins of
    some hour do not reach the p95; README, "Rollups, the p95 sketch and retention"), or
    `dashboard_series_exact` with `exact=True`.

    With `actor` (on a Database, outside a transaction) the series is read in a transaction
    of its own scoped to that actor by row-level security: only the samples and rollups the
    actor may read count, whatever the filters say (an admin reads everyone's). UsageError
    on a database without row-level security (SQLite), as `Database.transaction(scoped=True)`.

    With `allow_stale=True` (on a Database, outside a transaction) the result comes wrapped
    in a `StaleableSeries`; when the database is unavailable (DatabaseUnavailable,
    QueryTimeout) it is the last good result of an earlier `allow_stale` call with the same
    arguments, marked `stale` with its age, and the error propagates when there is none.
    """
    if not isinstance(period, str) or period not in PERIODS:
        raise InvalidInput(f"period: {period!r:.30} is not one of {', '.join(PERIODS)}")
    if now is not None:
        moment_arg(now, "now")
    if not isinstance(allow_stale, bool):
        raise InvalidInput(f"allow_stale: expected True or False, got {allow_stale!r:.30}")
    if not isinstance(exact, bool):
        raise InvalidInput(f"exact: expected True or False, got {exact!r:.30}")
    if actor is not None and not isinstance(actor, Actor):
        raise InvalidInput(f"actor: expected an Actor, got {type(actor).__name__}")
    user = None if user_id is None else uuid_arg(user_id, "user_id")
    board = None if dashboard_id is None else uuid_arg(dashboard_id, "dashboard_id")

    async def read(ex: Executor) -> list[MetricBucket]:
        return await read_series(
            ex,
            STATEMENTS.dashboard_series,
            STATEMENTS.dashboard_series_exact,
            PERIODS[period],
            user,
            board,
            now,
            exact,
        )

    async def read_as_actor() -> list[MetricBucket]:
        if actor is None:
            return await read(db)
        if db.in_transaction:
            raise UsageError("a series read as an actor runs in a transaction of its own")
        return await db.database.run_transaction(read, actor=actor, scoped=True)

    if not allow_stale:
        return await read_as_actor()
    kept = _last_good_series(db)
    key = (period, user, board, now, exact, actor)
    try:
        buckets = await read_as_actor()
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


_SeriesKey = tuple[str, UUID | None, UUID | None, datetime | None, bool, Actor | None]
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
