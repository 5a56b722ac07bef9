"""Load held, nothing lost: an open-loop mixed load against PostgreSQL at a ladder of rates,
then an audit of every acknowledged write.

    python bench/load.py [--rates 100,250,500,1000,1500,2000] [--seconds 10] [--pool 20]
                         [--through-pgbouncer] [--failover] [--closed-loop --users 50]

Open loop (the default): requests of the mix in bench/workload.py start at each rate
(Poisson arrivals) whatever the answers do, and each latency is counted from its intended
start. Prints p50 / p99 / p99.9 / max per operation at each rate, and the highest rate whose
add_message p99 stays under 25 ms. `--through-pgbouncer` starts Debian's PgBouncer in
transaction pooling mode in front of the server. `--failover` runs on a pg_auto_failover
formation of its own (tests/formation.py, as root) and kills the primary's keeper and
postmaster (kill -9) halfway through each rate; the layer is given both nodes in one URL.
`--closed-loop`: the earlier mode, `--users` simulated users each waiting for its last
answer (and `--think-ms` on average) before the next request.

At the end, every write the layer acknowledged must be stored exactly once and every
conversation's message_count must equal its rows. A throwaway database is made on the server
(STRATUS_BENCH_SERVER, default the local one) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from throwaway import throwaway_database
from workload import (
    MIX,
    WRITES,
    Ledger,
    Person,
    audit,
    make_users,
    one_request,
    open_loop,
    percentiles,
)

import stratus_sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import pgbouncer, through  # the tests' own PgBouncer

TARGET_P99_MS = 25.0


def report(ledger: Ledger, elapsed: float, label: str) -> None:
    total = sum(h.get_total_count() for h in ledger.histograms.values())
    print(f"\n{label}: {total / elapsed:,.0f} acknowledged requests/s")
    print("| operation | calls | p50 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, histogram in sorted(ledger.histograms.items()):
        p50, p99, p999, top = percentiles(histogram)
        count = histogram.get_total_count()
        print(f"| {name} | {count:,} | {p50:.2f} | {p99:.2f} | {p999:.2f} | {top:.2f} |")
    print(f"errors: {dict(ledger.errors) or 'none'}")


async def ladder(db: stratus_sql.Database, url: str, args: argparse.Namespace) -> int:
    rows = []
    failures = 0
    for step, rate in enumerate(args.rates):
        # New users at each rate: each rate's ledger and audit cover what it wrote.
        people = await make_users(db, 50, f"load.{step}.{os.getpid()}")
        ledger = Ledger()
        await open_loop(db, ledger, people, rate=rate, seconds=args.seconds, seed=int(rate))
        gc.collect()  # this rate's garbage is collected before the next rate, not during it
        report(ledger, args.seconds, f"{rate:g} requests/s offered")
        failures += await audited(url, ledger, people)
        if "add_message" in ledger.histograms:
            rows.append((rate, percentiles(ledger.histograms["add_message"])[1], ledger.errors))
    print("\n| offered req/s | add_message p99 ms | errors |")
    print("|---:|---:|---:|")
    for rate, p99, errors in rows:
        print(f"| {rate:g} | {p99:.2f} | {sum(errors.values())} |")
    held = [rate for rate, p99, errors in rows if p99 < TARGET_P99_MS and not errors]
    print(
        f"highest rate with add_message p99 < {TARGET_P99_MS:g} ms and no error: "
        f"{max(held):g} req/s"
        if held
        else f"no rate kept add_message p99 < {TARGET_P99_MS:g} ms"
    )
    return failures


async def audited(url: str, ledger: Ledger, people: list[Person]) -> int:
    problems = await audit(url, ledger, people)
    untyped = [o for o in ledger.outcomes if o.error and o.error.startswith("untyped")]
    print(
        f"audit: {len(ledger.messages):,} messages, {len(ledger.metrics):,} metrics,"
        f" {len(ledger.memories):,} memories acknowledged:"
        f" {'all present exactly once, counters match' if not problems else 'PROBLEMS'}"
        f"{f'; {len(untyped)} untyped errors' if untyped else ''}"
    )
    for problem in problems[:20]:
        print("  ", problem)
    return 1 if problems or untyped else 0


async def closed_loop(db: stratus_sql.Database, url: str, args: argparse.Namespace) -> int:
    people = await make_users(db, args.users, f"closed.{os.getpid()}")
    ledger = Ledger()
    until = time.monotonic() + args.seconds
    names, weights = list(MIX), list(MIX.values())

    async def user(person: Person, n: int) -> None:
        rng = random.Random(n)
        while time.monotonic() < until:
            if args.think_ms:
                await asyncio.sleep(rng.uniform(0, 2 * args.think_ms / 1000))
            operation = rng.choices(names, weights)[0]
            await one_request(db, ledger, person, operation, time.monotonic(), rng)

    started = time.monotonic()
    await asyncio.gather(*(user(p, n) for n, p in enumerate(people)))
    report(ledger, time.monotonic() - started, f"closed loop, {args.users} users")
    return await audited(url, ledger, people)


async def failover_ladder(args: argparse.Namespace) -> int:
    from tests.formation import formation

    failures = 0
    with formation() as found:
        conn = await asyncpg.connect(found.url())
        await conn.execute("CREATE DATABASE stratus_load")
        await conn.close()
        url = found.url("stratus_load")
        stratus_sql.apply_migrations(url)
        for step, rate in enumerate(args.rates):
            settings = stratus_sql.Settings.load(
                pool_min_size=args.pool, pool_max_size=args.pool, connect_timeout=2
            )
            async with await stratus_sql.connect(url, settings=settings) as db:
                people = await make_users(db, 50, f"failover.{step}.{os.getpid()}")
                ledger = Ledger()
                primary = found.primary()
                killed: list[float] = []
                killing: list[asyncio.Task[None]] = []

                def at(
                    elapsed: float,
                    killed: list[float] = killed,
                    killing: list[asyncio.Task[None]] = killing,
                    primary: str = primary,
                ) -> None:
                    # The kill waits for the processes to go: off the event loop, which
                    # keeps sending requests meanwhile.
                    if not killed and elapsed >= args.seconds / 2:
                        killed.append(time.monotonic())
                        kill = asyncio.to_thread(found.kill, primary)
                        killing.append(asyncio.create_task(kill))

                await open_loop(db, ledger, people, rate=rate, seconds=args.seconds, at=at)
                await asyncio.gather(*killing)
                report(ledger, args.seconds, f"{rate:g} requests/s, primary killed halfway")
                recovery = ledger.first_ack_after(killed[0], list(WRITES))
                print(
                    "recovery: no write acknowledged after the kill"
                    if recovery is None
                    else f"recovery: first acknowledged write {recovery:.2f} s after the kill"
                )
                failures += recovery is None
                failures += await audited(url, ledger, people)
            for name in ("node1", "node2"):
                if name not in found.keepers:
                    found.start_keeper(name)
            found.wait_healthy(120)
    return failures


@contextlib.contextmanager
def direct_or_pooled(
    url: str, args: argparse.Namespace
) -> Iterator[tuple[str, stratus_sql.Settings, int]]:
    """The URL to load, its settings, and PgBouncer's port (0: none)."""
    if not args.through_pgbouncer:
        yield url, stratus_sql.Settings.load(pool_min_size=args.pool, pool_max_size=args.pool), 0
        return
    with pgbouncer(url) as port:
        settings = stratus_sql.Settings.load(
            pool_min_size=args.pool,
            pool_max_size=args.pool,
            statement_cache_size=0,  # transaction pooling: no prepared statements kept
            listen_url=url,  # LISTEN needs a session of its own
        )
        yield through(url, port), settings, port


async def main(args: argparse.Namespace) -> int:
    # The tables are the report; a slow-statement line per request would be noise (and
    # writing them, at a thousand a second, a cost of its own).
    logging.getLogger("stratus_sql").setLevel(logging.ERROR)
    if args.failover:
        return await failover_ladder(args)
    with throwaway_database("stratus_load") as url:
        stratus_sql.apply_migrations(url)
        with direct_or_pooled(url, args) as (target, settings, port):
            where = f"PgBouncer on port {port}" if port else "directly"
            print(f"PostgreSQL {where}, pool {args.pool}, {os.cpu_count()} cores")
            async with await stratus_sql.connect(target, settings=settings) as db:
                if args.closed_loop:
                    return await closed_loop(db, url, args)
                return await ladder(db, url, args)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[100.0, 250.0, 500.0, 1000.0, 1500.0, 2000.0],
        help="offered requests a second, comma-separated",
    )
    parser.add_argument("--seconds", type=float, default=10, help="per rate")
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--through-pgbouncer", action="store_true")
    parser.add_argument("--failover", action="store_true")
    parser.add_argument("--closed-loop", action="store_true")
    parser.add_argument("--users", type=int, default=50, help="closed loop")
    parser.add_argument("--think-ms", type=float, default=0, help="closed loop")
    return parser.parse_args()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
