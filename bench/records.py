"""How rows become records: validated by pydantic-core (what the backends do) against
`model_construct`, which skips validation. Run with `make bench`.

Both paths build the same `User` records from the same driver rows, read from one SQLite
file and one Postgres database made for the run; the ratio is what skipping validation
would save per row.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import stratus_sql
from stratus_sql.engine.executor import field_types
from stratus_sql.queries import users
from stratus_sql.records import User

ROWS = 2_000
REPEAT = 15


def timed(fn: Callable[[], Any]) -> float:
    """Median seconds of `fn` over REPEAT runs."""
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def measure(url: str) -> tuple[str, float, float]:
    stratus_sql.apply_migrations(url)
    async with await stratus_sql.connect(url) as db:
        async with db.transaction() as tx:
            for i in range(ROWS):
                await users.create_user(
                    tx,
                    name=f"Piloto {i}",
                    email=f"bench.{os.getpid()}.{i}@example.com",
                    role="pilot",
                    licenses=["PP", "PC", "IFR"],
                    preferences={"idioma": "pt-BR", "unidades": {"altitude": "ft"}},
                )
        stmt = users.STATEMENTS.list_users.for_dialect(db.dialect)
        params = {"role": None, "license": None, "after": None, "limit": ROWS}
        rows = await db._run(stmt, lambda conn: conn.fetch(stmt, params))
        decode = db._decoder(stmt, User)  # what every query does: validate
        plan = [(n, db._driver.converter(tp)) for n, tp in field_types(User)]

        def construct(row: Any) -> User:  # the alternative: build records unvalidated
            return User.model_construct(
                **{
                    n: v if c is None or v is None else c(v)
                    for (n, c), v in zip(plan, row, strict=True)
                }
            )

        validated = timed(lambda: [decode(row) for row in rows])
        constructed = timed(lambda: [construct(row) for row in rows])
        assert [decode(r) for r in rows] == [construct(r) for r in rows]
        return db.dialect, constructed, validated


async def main() -> None:
    import psycopg

    server = os.environ.get("STRATUS_BENCH_SERVER", "postgresql://root@127.0.0.1:5432/postgres")
    name = f"stratus_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            urls = [server.rsplit("/", 1)[0] + f"/{name}", f"sqlite:///{tmp}/bench.db"]
            print(f"rows -> User records, {ROWS} rows, median of {REPEAT} runs")
            for url in urls:
                dialect, constructed, validated = await measure(url)
                print(
                    f"  {dialect:8}  validated {validated / ROWS * 1e6:6.2f} us/row   "
                    f"model_construct {constructed / ROWS * 1e6:6.2f} us/row   "
                    f"validated/construct {validated / constructed:4.2f}x"
                )
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
