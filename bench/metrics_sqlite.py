"""Dashboard series on SQLite: rollups against every raw sample.

    python bench/metrics_sqlite.py [--size 1000000] [--users 20] [--repeat 5]

A throwaway SQLite file in a temporary directory is loaded with samples spread over 35 days
and over the users, by `record_metrics`, 100,000 a call (each call adds its samples to the
rollups in the same transaction). Then `dashboard_series` is timed by default (rollups, and
the samples of the hours bucket edges cut) and with `exact=True` (every sample of the
window): the organisation's 24h, 7d and 30d, the organisation's 30d with `now` on the hour,
and one user's 30d. `now` is otherwise the current time, as a dashboard passes it. Each
default series must count the samples of each bucket as the exact one does.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from metrics import BATCH, EXACT_REPEAT, counts, load, make_users, progress, timed

import stratus_sql
from stratus_sql.queries import metrics


async def measure(
    db: stratus_sql.Database, user_id: uuid.UUID | None, period: str, on_the_hour: bool, repeat: int
) -> tuple[float, float]:
    """Milliseconds of the default series and of the exact one, checked against each other."""
    now = datetime.now(UTC)  # as a dashboard passes it: any time
    if on_the_hour:
        now = now.replace(minute=0, second=0, microsecond=0)
    default, rolled = await timed(
        lambda: metrics.dashboard_series(db, period=period, user_id=user_id, now=now), repeat
    )
    exact, computed = await timed(
        lambda: metrics.dashboard_series(db, period=period, user_id=user_id, now=now, exact=True),
        EXACT_REPEAT,
    )
    assert counts(rolled) == counts(computed), f"{period} {user_id}: samples per bucket"
    return default * 1000, exact * 1000


async def bench(path: Path, size: int, n_users: int, repeat: int) -> list[str]:
    url = f"sqlite:///{path}"
    stratus_sql.apply_migrations(url)
    db = await stratus_sql.connect(url)
    try:
        user_ids = await make_users(db, n_users)
        seconds = await load(db, user_ids, size, datetime.now(UTC))
        lines = [
            f"load with record_metrics, {BATCH:,} a call: {size:,} samples of {n_users} users "
            f"in {seconds:.1f} s, {size / seconds:,.0f} rows/s",
            f"\nseries, median of {repeat} (exact: {EXACT_REPEAT})",
            "| series | period | default ms | exact ms | exact / default |",
            "|---|---|---|---|---|",
        ]
        progress(lines[0])
        for name, user_id, period, on_the_hour in (
            ("organisation", None, "24h", False),
            ("organisation", None, "7d", False),
            ("organisation", None, "30d", False),
            ("organisation, `now` on the hour", None, "30d", True),
            (f"one user of {n_users}", user_ids[0], "30d", False),
        ):
            default, exact = await measure(db, user_id, period, on_the_hour, repeat)
            lines.append(
                f"| {name} | {period} | {default:.1f} | {exact:.1f} | {exact / default:.1f}x |"
            )
            progress(lines[-1])
    finally:
        await db.close()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stratus_bench_") as tmp:
        lines = await bench(Path(tmp) / "bench.db", args.size, args.users, args.repeat)
    print("## SQLite: dashboard series over samples of 35 days\n")
    print("\n".join(lines))
    print(f"\n(bench/metrics_sqlite.py: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
