"""Metric ingest on PostgreSQL: the layer's COPY against the ORM and raw asyncpg, with and
without the hourly rollups.

    python bench/metrics_ingest.py [--ingest 100000]

Every way loads the same samples of one user (spread over 35 days, as a backfill) into an
empty metrics table and empty rollups: ORM `add_all`, asyncpg `executemany`,
`record_metrics` (binary COPY) and raw `copy_records_to_table`, and executemany,
`record_metrics` and raw COPY again with the rollup trigger disabled, to show what keeping
the rollups costs; then `record_metrics` with and without rollups on samples of the last
hour, as a live service sends them (a backfill touches an hour's rollups per hour it spans,
a live batch one). The trigger is a
statement trigger: it runs once per COPY, and once per row of an executemany. A throwaway
database is made on STRATUS_BENCH_SERVER (default the local server) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from metrics import SPAN, MetricRow, make_users, progress, rows_for
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from throwaway import throwaway_database

import stratus_sql
from stratus_sql.drivers.pgconnect import init_connection as _init_connection
from stratus_sql.ids import uuid7, uuid7_batch
from stratus_sql.queries import metrics

COLUMNS = [
    "metric_id", "user_id", "dashboard_id", "ia_efficiency", "model_accuracy",
    "processing_time_ms", "memory_usage_mb", "error_rate", "timestamp", "periodo",
]  # fmt: skip

INSERT = 'INSERT INTO metrics ("{}") VALUES ({})'.format(
    '", "'.join(COLUMNS), ", ".join(f"${i + 1}" for i in range(len(COLUMNS)))
)
NO_ROLLUPS = ", rollup trigger disabled"
LAST_HOUR = ", samples of the last hour"


def with_ids(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as tuples in COLUMNS order, each with a new id, for the raw drivers."""
    return [
        (i, r["user_id"], r["dashboard_id"], r["ia_efficiency"], r["model_accuracy"],
         r["processing_time_ms"], r["memory_usage_mb"], r["error_rate"], r["timestamp"],
         r["periodo"])
        for i, r in zip(uuid7_batch(len(rows)), rows, strict=True)
    ]  # fmt: skip


async def bench_ingest(url: str, n: int) -> list[str]:
    """Each way's median of 3 loads of n samples, each into empty metrics and rollups."""
    db = await stratus_sql.connect(url)
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    lines, timings = [], {}
    try:
        now = datetime.now(UTC)
        await conn.execute("SELECT metrics_add_partitions(3, $1)", now - SPAN)
        owner = await make_users(db, 1)
        batch = list(rows_for(owner, n, now, random.Random(9)))
        # As a live service sends them: the samples of the last hour.
        recent = list(rows_for(owner, n, now, random.Random(9), timedelta(hours=1)))

        # Every method starts from the same sample mappings, as an application has them; its
        # timing includes turning them into what its driver takes (ids, tuples, objects).
        async def orm() -> None:
            async with AsyncSession(engine) as session:
                session.add_all(MetricRow(metric_id=uuid7(), **row) for row in batch)
                await session.commit()

        async def executemany() -> None:
            await conn.executemany(INSERT, with_ids(batch))

        async def layer() -> None:
            await metrics.record_metrics(db, batch)

        async def layer_recent() -> None:
            await metrics.record_metrics(db, recent)

        async def raw_copy() -> None:
            await conn.copy_records_to_table("metrics", records=with_ids(batch), columns=COLUMNS)

        for name, call, rollups in (
            ("ORM add_all", orm, True),
            ("asyncpg executemany", executemany, True),
            ("record_metrics (COPY)", layer, True),
            ("asyncpg copy_records_to_table", raw_copy, True),
            (f"asyncpg executemany{NO_ROLLUPS}", executemany, False),
            (f"record_metrics (COPY){NO_ROLLUPS}", layer, False),
            (f"asyncpg copy_records_to_table{NO_ROLLUPS}", raw_copy, False),
            (f"record_metrics (COPY){LAST_HOUR}", layer_recent, True),
            (f"record_metrics (COPY){LAST_HOUR}{NO_ROLLUPS}", layer_recent, False),
        ):
            runs = []
            for _ in range(3):
                await conn.execute("TRUNCATE metrics, metrics_hourly")
                if not rollups:
                    await conn.execute("ALTER TABLE metrics DISABLE TRIGGER metrics_roll_up")
                try:
                    started = time.perf_counter()
                    await call()
                    runs.append(time.perf_counter() - started)
                finally:
                    if not rollups:
                        await conn.execute("ALTER TABLE metrics ENABLE TRIGGER metrics_roll_up")
            timings[name] = statistics.median(runs)
            lines.append(f"| {name} | {timings[name]:.2f} | {n / timings[name]:,.0f} |")
            progress(lines[-1])
    finally:
        await conn.close()
        await engine.dispose()
        await db.close()
    layer_s, copy_s = timings["record_metrics (COPY)"], timings["asyncpg copy_records_to_table"]
    recent = f"record_metrics (COPY){LAST_HOUR}"
    live = timings[recent] / timings[recent + NO_ROLLUPS]
    return [
        *lines,
        f"\nrecord_metrics / raw copy_records_to_table, both with rollups: {layer_s / copy_s:.2f}x",
        "record_metrics with rollups / without: "
        f"{layer_s / timings[f'record_metrics (COPY){NO_ROLLUPS}']:.2f}x",
        "raw copy_records_to_table with rollups / without: "
        f"{copy_s / timings[f'asyncpg copy_records_to_table{NO_ROLLUPS}']:.2f}x",
        f"record_metrics with rollups / without, samples of the last hour: {live:.2f}x",
        "asyncpg executemany with rollups / without: "
        f"{timings['asyncpg executemany'] / timings[f'asyncpg executemany{NO_ROLLUPS}']:.2f}x",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    with throwaway_database("stratus_bench_ingest") as url:
        stratus_sql.apply_migrations(url)
        lines = await bench_ingest(url, args.ingest)
    print(f"## PostgreSQL: ingest of {args.ingest:,} samples, median of 3, into an empty table\n")
    print("| method | seconds | rows/s |\n|---|---|---|")
    print("\n".join(lines))
    print(f"\n(bench/metrics_ingest.py: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
