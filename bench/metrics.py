"""Dashboard series and metric ingest against the original plan's ORM approach.

    python bench/metrics.py [--sizes 100000 1000000] [--users 10] [--ingest 100000]

The original plan read a dashboard with a SQLAlchemy ORM query that fetched every row of the
period and aggregated in Python; `orm_series` below does exactly that. Next to it run
`dashboard_series` and raw asyncpg executing the same SQL, on the same PostgreSQL database, for
24h, 7d and 30d, at each stored size. Ingest compares ORM `add_all`, asyncpg `executemany`,
`record_metrics` (binary COPY) and raw `copy_records_to_table`. A throwaway database is made
on the server (STRATUS_BENCH_SERVER, default the local one) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import DateTime, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from throwaway import throwaway_database

import stratus_sql
from stratus_sql.drivers.pgconnect import init_connection as _init_connection
from stratus_sql.drivers.pgconnect import keep_session as _keep_session
from stratus_sql.ids import uuid7, uuid7_batch
from stratus_sql.queries import metrics, users

COLUMNS = [
    "metric_id", "user_id", "dashboard_id", "ia_efficiency", "model_accuracy",
    "processing_time_ms", "memory_usage_mb", "error_rate", "timestamp", "periodo",
]  # fmt: skip


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
        for name in (
            "ia_efficiency",
            "model_accuracy",
            "processing_time_ms",
            "memory_usage_mb",
            "error_rate",
        ):
            bucket[name] = statistics.fmean(getattr(r, name) for r in inside) if inside else None
        bucket["processing_time_p95_ms"] = (
            percentile_cont([r.processing_time_ms for r in inside], 0.95) if inside else None
        )
        bucket["error_rate_max"] = max(r.error_rate for r in inside) if inside else None
        out.append(bucket)
    return out


def rows_for(
    user_ids: list[uuid.UUID], n: int, now: datetime, rng: random.Random
) -> list[dict[str, Any]]:
    """n samples (without ids) over the 35 days before `now`, round-robin over the users."""
    span = 35 * 86400
    return [
        {
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
        for i in range(n)
    ]


def with_ids(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as tuples in COLUMNS order, each with a new id, for the raw drivers."""
    return [
        (i, r["user_id"], r["dashboard_id"], r["ia_efficiency"], r["model_accuracy"],
         r["processing_time_ms"], r["memory_usage_mb"], r["error_rate"], r["timestamp"],
         r["periodo"])
        for i, r in zip(uuid7_batch(len(rows)), rows, strict=True)
    ]  # fmt: skip


async def median_seconds(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def measure_period(
    db: stratus_sql.Database,
    raw: asyncpg.Pool,
    sessions: Callable[[], AsyncSession],
    user_id: uuid.UUID,
    size: int,
    period: str,
    now: datetime,
    repeat: int,
) -> str:
    """One table row: the layer, raw asyncpg and the ORM baseline on one period."""
    stmt = metrics.STATEMENTS.dashboard_series.for_dialect("postgres")
    count, width = metrics.PERIODS[period]
    args = stmt.positional(
        {
            "since": now - timedelta(seconds=count * width),
            "now": now,
            "bucket_seconds": width,
            "buckets": count,
            "user_id": user_id,
            "dashboard_id": None,
        }
    )
    ours = await median_seconds(
        lambda: metrics.dashboard_series(db, period=period, user_id=user_id, now=now), repeat
    )
    theirs = await median_seconds(lambda: raw.fetch(stmt.text, *args), repeat)
    orm = await median_seconds(
        lambda: orm_series(sessions, user_id, period, now), max(1, repeat // 3)
    )
    check = await metrics.dashboard_series(db, period=period, user_id=user_id, now=now)
    baseline = await orm_series(sessions, user_id, period, now)
    assert [b.samples for b in check] == [b["samples"] for b in baseline]
    return (
        f"| {size:,} | {period} | {ours * 1000:.1f} | {theirs * 1000:.1f} | "
        f"{orm * 1000:.0f} | {ours / theirs:.2f}x | {orm / ours:.0f}x |"
    )


async def bench_series(url: str, sizes: list[int], n_users: int, repeat: int) -> list[str]:
    db = await stratus_sql.connect(url)
    raw = await asyncpg.create_pool(url, init=_init_connection, reset=_keep_session)
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    sessions = lambda: AsyncSession(engine)  # noqa: E731
    conn = await asyncpg.connect(url)
    lines = []
    try:
        user_ids = [
            (
                await users.create_user(db, name=f"U{i}", email=f"u{i}@bench.example", role="pilot")
            ).user_id
            for i in range(n_users)
        ]
        now = datetime.now(UTC)
        rng = random.Random(5)
        stored = 0
        stmt = metrics.STATEMENTS.dashboard_series.for_dialect("postgres")
        for size in sizes:
            batch = rows_for(user_ids, size - stored, now - timedelta(microseconds=stored), rng)
            for start in range(0, len(batch), 100_000):
                await metrics.record_metrics(db, batch[start : start + 100_000])
            stored = size
            await conn.execute("VACUUM ANALYZE metrics")
            for period in ("24h", "7d", "30d"):
                lines.append(
                    await measure_period(db, raw, sessions, user_ids[0], size, period, now, repeat)
                )
                print(lines[-1], flush=True)
        explain = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + stmt.text,
            *stmt.positional(
                {
                    "since": now - timedelta(days=30),
                    "now": now,
                    "bucket_seconds": 86400,
                    "buckets": 30,
                    "user_id": user_ids[0],
                    "dashboard_id": None,
                }
            ),
        )
        lines.append("")
        lines.extend(r[0] for r in explain)
    finally:
        await conn.close()
        await raw.close()
        await engine.dispose()
        await db.close()
    return lines


async def bench_ingest(url: str, n: int) -> list[str]:
    db = await stratus_sql.connect(url)
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    lines = []
    try:
        owner = await users.create_user(
            db, name="Ingest", email="ingest@bench.example", role="pilot"
        )
        rng = random.Random(9)
        now = datetime.now(UTC)
        insert = "INSERT INTO metrics ({}) VALUES ({})".format(
            ", ".join(f'"{c}"' for c in COLUMNS),
            ", ".join(f"${i + 1}" for i in range(len(COLUMNS))),
        )

        batch = rows_for([owner.user_id], n, now, rng)

        # Every method starts from the same sample mappings, as an application has them; its
        # timing includes turning them into what its driver takes (ids, tuples, objects).
        async def orm() -> None:
            async with AsyncSession(engine) as session:
                session.add_all(MetricRow(metric_id=uuid7(), **row) for row in batch)
                await session.commit()

        async def executemany() -> None:
            await conn.executemany(insert, with_ids(batch))

        async def layer() -> None:
            await metrics.record_metrics(db, batch)

        async def raw_copy() -> None:
            await conn.copy_records_to_table("metrics", records=with_ids(batch), columns=COLUMNS)

        timings: dict[str, float] = {}
        for name, call in (
            ("ORM add_all", orm),
            ("asyncpg executemany", executemany),
            ("record_metrics (COPY)", layer),
            ("asyncpg copy_records_to_table", raw_copy),
        ):
            runs = []
            for _ in range(3):
                await conn.execute("DELETE FROM metrics WHERE user_id = $1", owner.user_id)
                await conn.execute("VACUUM metrics")
                started = time.perf_counter()
                await call()
                runs.append(time.perf_counter() - started)
            timings[name] = statistics.median(runs)
            lines.append(f"| {name} | {timings[name]:.2f} | {n / timings[name]:,.0f} |")
            print(lines[-1], flush=True)
        ratio = timings["record_metrics (COPY)"] / timings["asyncpg copy_records_to_table"]
        lines.append(f"\nrecord_metrics / raw copy_records_to_table: {ratio:.2f}x")
    finally:
        await conn.close()
        await engine.dispose()
        await db.close()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--ingest", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with throwaway_database("stratus_bench") as url:
        stratus_sql.apply_migrations(url)
        print(f"series of one user of {args.users}, samples over 35 days, median of {args.repeat}")
        print(
            "| stored | period | dashboard_series ms | raw asyncpg ms | ORM ms "
            "| layer/raw | ORM/layer |"
        )
        print("|---|---|---|---|---|---|---|")
        series = await bench_series(url, args.sizes, args.users, args.repeat)
        print("\n".join(line for line in series if not line.startswith("|")))
        print(f"\ningest of {args.ingest:,} samples, median of 3")
        print("| method | seconds | rows/s |")
        print("|---|---|---|")
        await bench_ingest(url, args.ingest)


if __name__ == "__main__":
    asyncio.run(main())
