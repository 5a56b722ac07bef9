"""Dashboard series on PostgreSQL: hourly rollups against raw samples and the ORM baseline.

    python bench/metrics.py [--sizes 1000000 10000000] [--users 10] [--repeat 9]

Samples spread over 35 days and the users are loaded with `record_metrics`, 100,000 a call
(the rollup trigger runs on each). At each size, for 24h, 7d and 30d, `dashboard_series` is
timed by default (rollups, and the samples of the hours bucket edges cut) and with
`exact=True`, for one user and the organisation, next to the original plan's read
(`orm_series`: a SQLAlchemy ORM query fetching every row of the period, aggregated in
Python). `now` is the current time, as a dashboard passes it; the organisation's 30d series
is also timed with `now` on the hour. Every series must count the samples of each bucket as
the exact one does. The layer's connection first runs each statement 6 times, as a running
application's have; the same calls on connections with JIT off and custom plans only
(`tuned`) show what the server's settings cost, and the generic plan is EXPLAINed at the
end. A throwaway database is made on STRATUS_BENCH_SERVER (default the local server) and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import asyncpg
from sqlalchemy import DateTime, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from throwaway import throwaway_database

import stratus_sql
from stratus_sql.queries import metrics, users
from stratus_sql.queries._series import SKETCH_TAIL

STATISTICS = ["ia_efficiency", "model_accuracy", "processing_time_ms", "memory_usage_mb",
              "error_rate"]  # fmt: skip
BATCH = 100_000  # samples per record_metrics call when loading
SPAN = timedelta(days=35)  # the samples' spread before the load's `now`
EXACT_REPEAT = 3  # a full scan of the window: fewer runs
ORM_REPEAT = 3  # fetching every row of the window; 1 run above ORM_FULL_REPEAT_UP_TO stored
ORM_FULL_REPEAT_UP_TO = 1_000_000
SLOW = 1.0  # seconds: a call slower than that is timed 3 times at most
TUNED = "jit=off&plan_cache_mode=force_custom_plan"  # asyncpg: URL parameters set the server's
SERIES = metrics.STATEMENTS.dashboard_series.for_dialect("postgres")


class Base(DeclarativeBase):
    pass


class MetricRow(Base):
    """The metrics table as the original plan mapped it."""

    __tablename__ = "metrics"

    metric_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID]
    dashboard_id: Mapped[uuid.UUID | None]
    ia_efficiency: Mapped[float]
    model_accuracy: Mapped[float]
    processing_time_ms: Mapped[float]
    memory_usage_mb: Mapped[float]
    error_rate: Mapped[float]
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    periodo: Mapped[str | None]


def percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    h = q * (len(ordered) - 1)
    lo = math.floor(h)
    return ordered[lo] + (h - lo) * (ordered[min(lo + 1, len(ordered) - 1)] - ordered[lo])


async def orm_series(
    session_factory: Callable[[], AsyncSession], user_id: uuid.UUID, period: str, now: datetime
) -> list[dict[str, Any]]:
    """Fetch every sample of the period through the ORM, then bucket and aggregate in Python."""
    count, width = metrics.PERIODS[period]
    since = now - timedelta(seconds=count * width)
    async with session_factory() as session:
        result = await session.execute(
            select(MetricRow).where(
                MetricRow.user_id == user_id,
                MetricRow.timestamp >= since,
                MetricRow.timestamp < now,
            )
        )
        rows = result.scalars().all()
    buckets: list[list[MetricRow]] = [[] for _ in range(count)]
    for row in rows:
        buckets[int((row.timestamp - since).total_seconds() // width)].append(row)
    out = []
    for i, inside in enumerate(buckets):
        bucket: dict[str, Any] = {
            "bucket_start": since + timedelta(seconds=i * width),
            "samples": len(inside),
        }
        for name in STATISTICS:
            bucket[name] = statistics.fmean(getattr(r, name) for r in inside) if inside else None
        bucket["processing_time_p95_ms"] = (
            percentile_cont([r.processing_time_ms for r in inside], 0.95) if inside else None
        )
        bucket["error_rate_max"] = max(r.error_rate for r in inside) if inside else None
        out.append(bucket)
    return out


def rows_for(
    user_ids: list[uuid.UUID],
    n: int,
    now: datetime,
    rng: random.Random,
    spread: timedelta = SPAN,
) -> Iterator[dict[str, Any]]:
    """n samples (without ids) spread evenly over `spread` (35 days) before `now`, newest
    first, round-robin over the users."""
    span = spread.total_seconds()
    for i in range(n):
        yield {
            "user_id": user_ids[i % len(user_ids)],
            "dashboard_id": None,
            "ia_efficiency": rng.uniform(0.75, 0.98),
            "model_accuracy": rng.uniform(0.85, 0.99),
            "processing_time_ms": rng.uniform(50, 500),
            "memory_usage_mb": rng.uniform(128, 1024),
            "error_rate": rng.uniform(0, 0.05),
            "timestamp": now - timedelta(seconds=span * (i + 0.5) / n),
            "periodo": "1h",
        }


async def make_users(db: stratus_sql.Database, n: int) -> list[uuid.UUID]:
    made = []
    for i in range(n):
        user = await users.create_user(db, name=f"U{i}", email=f"u{i}@bench.example", role="pilot")
        made.append(user.user_id)
    return made


async def load(db: stratus_sql.Database, user_ids: list[uuid.UUID], n: int, now: datetime) -> float:
    """Store n samples with record_metrics, BATCH at a time; the seconds spent in it (the
    samples are made beforehand, batch by batch)."""
    samples, spent = rows_for(user_ids, n, now, random.Random(n)), 0.0
    while batch := list(islice(samples, BATCH)):
        started = time.perf_counter()
        await metrics.record_metrics(db, batch)
        spent += time.perf_counter() - started
    return spent


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """The median seconds of `repeat` calls (of 3 when the first takes over SLOW seconds),
    and what the last one returned."""
    samples: list[float] = []
    result = None
    while len(samples) < (repeat if not samples or samples[0] < SLOW else min(repeat, 3)):
        started = time.perf_counter()
        result = await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def counts(buckets: list[Any]) -> list[int]:
    return [b["samples"] if isinstance(b, dict) else b.samples for b in buckets]


@dataclass
class Target:
    """What the series are read through: the layer, on connections with the server's
    settings and on tuned ones, and the ORM; and whose series is read."""

    db: stratus_sql.Database
    tuned: stratus_sql.Database
    sessions: Callable[[], AsyncSession]
    user_id: uuid.UUID
    repeat: int


def statement_args(period: str, now: datetime, user_id: uuid.UUID | None) -> list[Any]:
    """The default series statement's positional arguments, as the layer binds them."""
    count, width = metrics.PERIODS[period]
    return SERIES.positional(
        {"since": now - timedelta(seconds=count * width), "now": now, "bucket_seconds": width,
         "buckets": count, "user_id": user_id, "dashboard_id": None,
         "sketch_tail": SKETCH_TAIL}
    )  # fmt: skip


async def measure_period(t: Target, size: int, period: str) -> dict[str, float]:
    """Milliseconds of each way to read one period's series, checked against each other."""
    now = datetime.now(UTC)  # as a dashboard passes it: any time, not on the hour

    def series(db: stratus_sql.Database, user_id: uuid.UUID | None, exact: bool = False) -> Any:
        return lambda: metrics.dashboard_series(
            db, period=period, user_id=user_id, now=now, exact=exact
        )

    ms: dict[str, float] = {}
    got: dict[str, Any] = {}
    for who, user_id in (("user", t.user_id), ("org", None)):
        for db, how in ((t.db, ""), (t.tuned, ", tuned")):
            ms[who + how], got[who + how] = await timed(series(db, user_id), t.repeat)
            ms[f"{who} exact{how}"], exact = await timed(series(db, user_id, True), EXACT_REPEAT)
            assert counts(got[who + how]) == counts(exact), f"{size} {period} {who}{how}"
    orm_repeat = ORM_REPEAT if size <= ORM_FULL_REPEAT_UP_TO else 1
    ms["ORM"], orm = await timed(lambda: orm_series(t.sessions, t.user_id, period, now), orm_repeat)
    assert counts(orm) == counts(got["user"]), f"{size} {period}: the ORM's samples"
    if period == "30d":  # and `now` (which `series` reads) on the hour: the rollups alone
        now = now.replace(minute=0, second=0, microsecond=0)
        ms["org on the hour"], rolled = await timed(series(t.db, None), t.repeat)
        ms["org on the hour, tuned"], _ = await timed(series(t.tuned, None), t.repeat)
        assert counts(rolled) == counts(await series(t.db, None, True)()), f"{size} on the hour"
    return {name: seconds * 1000 for name, seconds in ms.items()}


async def warm_up(t: Target) -> None:
    """Run each series statement 6 times on the layer's connection, a mix of periods and
    series as a dashboard asks for: past its first 5 runs a prepared statement may switch to
    its generic plan, as on an application's long-lived connections."""
    for period in metrics.PERIODS:
        for user_id in (t.user_id, None):
            for exact in (False, True):
                await metrics.dashboard_series(t.db, period=period, user_id=user_id, exact=exact)


async def bench_series(url: str, sizes: list[int], n_users: int, repeat: int) -> list[str]:
    db = await stratus_sql.connect(url)
    tuned = await stratus_sql.connect(f"{url}?{TUNED}")
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    conn = await asyncpg.connect(url)
    loads, results = [], {}
    try:
        user_ids = await make_users(db, n_users)
        t = Target(db, tuned, lambda: AsyncSession(engine), user_ids[0], repeat)
        data_now = datetime.now(UTC)
        # The samples' months have their partitions, as on a server that ran through them.
        await conn.execute("SELECT metrics_add_partitions(3, $1)", data_now - SPAN)
        stored = 0
        for size in sizes:
            # What is added spreads over the same 35 days, a microsecond apart from the rest.
            added = size - stored
            seconds = await load(db, user_ids, added, data_now - timedelta(microseconds=stored))
            started = time.perf_counter()
            await conn.execute("VACUUM ANALYZE metrics, metrics_hourly")
            vacuum = time.perf_counter() - started
            loads.append(
                f"| {stored:,} | {added:,} | {seconds:.1f} | {added / seconds:,.0f} "
                f"| {vacuum:.1f} |"
            )
            progress(loads[-1])
            if not stored:
                await warm_up(t)
            stored = size
            for period in metrics.PERIODS:
                results[size, period] = await measure_period(t, size, period)
                progress(f"{size:,} {period}: {results[size, period]}")
        now = datetime.now(UTC)
        # As the layer's connections come to run it: prepared, a generic plan after 5 runs.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE series AS {SERIES.text}")
        values = (f"'{v}'" if v is not None else "NULL" for v in statement_args("30d", now, None))
        explain = await conn.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE series({', '.join(values)})"
        )
    finally:
        await conn.close()
        await engine.dispose()
        await tuned.close()
        await db.close()
    return [
        f"load with record_metrics, {BATCH:,} a call (VACUUM ANALYZE afterwards, apart)",
        "| stored before | added | seconds | rows/s | VACUUM ANALYZE s |",
        "|---|---|---|---|---|",
        *loads,
        f"\nseries ms, median of {repeat}, of 3 for calls over {SLOW:.0f} s (exact: "
        f"{EXACT_REPEAT}; ORM: {ORM_REPEAT} up to {ORM_FULL_REPEAT_UP_TO:,} stored, 1 above); "
        f"user: one of {n_users}, org: all of them; tuned: the layer on connections set {TUNED}; "
        "after 6 runs of each statement on the layer's connection",
        *series_tables(results),
        f"\nEXPLAIN ANALYZE of the organisation's 30d series at {sizes[-1]:,} stored "
        "(the generic plan):",
        *(r[0] for r in explain),
    ]


def series_tables(results: dict[tuple[int, str], dict[str, float]]) -> list[str]:
    """The series' milliseconds, their ratios, and the organisation's 30d series by size."""
    names = [f"{who}{exact}{how}" for how in ("", ", tuned") for who in ("user", "org")
             for exact in ("", " exact")]  # fmt: skip
    ratios = [("ORM", "user"), ("user exact", "user"), ("org exact", "org"), ("org", "org, tuned"),
              ("user exact, tuned", "user, tuned"), ("org exact, tuned", "org, tuned")]  # fmt: skip
    hourly = ["org", "org, tuned", "org on the hour", "org on the hour, tuned"]
    org = {size: ms["org"] for (size, period), ms in results.items() if period == "30d"}
    small, large = min(org), max(org)
    return [
        f"| stored | period | {' | '.join(names)} | ORM (user) |",
        "|---|---|" + "---|" * (len(names) + 1),
        *(
            f"| {size:,} | {period} | {' | '.join(f'{ms[n]:.1f}' for n in names)} "
            f"| {ms['ORM']:,.0f} |"
            for (size, period), ms in results.items()
        ),
        f"\n| stored | period | {' | '.join(f'{a} / {b}' for a, b in ratios)} |",
        "|---|---|" + "---|" * len(ratios),
        *(
            f"| {size:,} | {period} | {' | '.join(f'{ms[a] / ms[b]:.2f}x' for a, b in ratios)} |"
            for (size, period), ms in results.items()
        ),
        "\norganisation's 30d series ms, `now` the current time and on the hour",
        f"| stored | {' | '.join(hourly)} |",
        "|---|" + "---|" * len(hourly),
        *(
            f"| {size:,} | {' | '.join(f'{ms[n]:.1f}' for n in hourly)} |"
            for (size, period), ms in results.items()
            if period == "30d"
        ),
        f"\norganisation's 30d series, {large:,} / {small:,} stored: "
        f"{org[large]:.1f} / {org[small]:.1f} ms = {org[large] / org[small]:.2f}x",
    ]


progress = functools.partial(print, file=sys.stderr, flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    started = time.perf_counter()
    with throwaway_database("stratus_bench") as url:
        stratus_sql.apply_migrations(url)
        series = await bench_series(url, sorted(args.sizes), args.users, args.repeat)
    print("## PostgreSQL: dashboard series over samples of 35 days\n")
    print("\n".join(series))
    print(f"\n(bench/metrics.py: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
