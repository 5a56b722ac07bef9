"""Load held, nothing lost: simulated users against PostgreSQL, then an audit of every write.

    python bench/load.py [--users 50] [--seconds 60] [--pool 20]

Each simulated user creates conversations, adds messages, stores and searches memories,
records metrics and reads its dashboard series, pausing --think-ms on average between
operations (default 0: a closed loop that saturates the machine). Every write the library
acknowledged is remembered; at the end the database must hold each of them exactly once, and
every conversation's message_count must equal its rows. Prints throughput, p50 and p99 per
operation, and the errors. A throwaway database is made on the server (STRATUS_BENCH_SERVER,
default the local one) and dropped afterwards; DATABASE_URL-style settings (DB_*) apply.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
from throwaway import throwaway_database

import stratus_sql
from stratus_sql.queries import conversations, memory, metrics, users

WORDS = [
    "altímetro", "pouso", "decolagem", "vento", "través",
    "checklist", "motor", "hélice", "flape", "trem",
]  # fmt: skip


@dataclass
class Ledger:
    """What the library acknowledged, and how long each operation took."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    conversations: dict[UUID, int] = field(default_factory=dict)  # id -> messages acked
    messages: set[UUID] = field(default_factory=set)
    memories: set[tuple[UUID, str]] = field(default_factory=set)
    metrics: set[UUID] = field(default_factory=set)

    async def timed(self, name: str, call: Awaitable[object]) -> object | None:
        started = time.perf_counter()
        try:
            result = await call
        except stratus_sql.StratusError as exc:
            self.errors[f"{name}: {type(exc).__name__}"] += 1
            return None
        self.latencies[name].append((time.perf_counter() - started) * 1000)
        return result


async def simulated_user(
    db: stratus_sql.Database, ledger: Ledger, n: int, until: float, think: float
) -> None:
    rng = random.Random(n)
    user = await users.create_user(
        db, name=f"Piloto {n}", email=f"piloto{n}.{os.getpid()}@example.com", role="pilot"
    )
    uid = user.user_id
    mine: list[UUID] = []
    while time.monotonic() < until:
        if think:
            await asyncio.sleep(rng.uniform(0, 2 * think))
        roll = rng.random()
        if roll < 0.08 or not mine:
            made = await ledger.timed(
                "create_conversation",
                conversations.create_conversation(db, user_id=uid, title="Briefing"),
            )
            if isinstance(made, stratus_sql.records.Conversation):
                mine.append(made.conversation_id)
                ledger.conversations[made.conversation_id] = 0
        elif roll < 0.58:
            cid = rng.choice(mine)
            text = " ".join(rng.choices(WORDS, k=12))
            sent = await ledger.timed(
                "add_message",
                conversations.add_message(
                    db,
                    conversation_id=cid,
                    user_id=uid,
                    content=text,
                    message_type=rng.choice(["user_input", "agent_response"]),
                    tokens_used=rng.randint(5, 500),
                    response_time=rng.random(),
                ),
            )
            if isinstance(sent, stratus_sql.records.Message):
                ledger.messages.add(sent.message_id)
                ledger.conversations[cid] += 1
        elif roll < 0.73:
            key = f"nota-{rng.randint(0, 50)}"
            value = {"texto": " ".join(rng.choices(WORDS, k=6))}
            stored = await ledger.timed(
                "store_memory",
                memory.store_memory(
                    db,
                    user_id=uid,
                    key=key,
                    value=value,
                    memory_type="medium_term",
                    importance_score=rng.random(),
                ),
            )
            if stored is not None:
                ledger.memories.add((uid, key))
        elif roll < 0.88:
            word = rng.choice(WORDS)
            await ledger.timed("search_memories", memory.search_memories(db, uid, word))
        elif roll < 0.95:
            sample = await ledger.timed(
                "record_metric",
                metrics.record_metric(
                    db,
                    user_id=uid,
                    ia_efficiency=rng.random(),
                    model_accuracy=rng.random(),
                    processing_time_ms=rng.uniform(50, 500),
                    memory_usage_mb=rng.uniform(100, 900),
                    error_rate=rng.random() / 10,
                ),
            )
            if isinstance(sample, stratus_sql.records.Metric):
                ledger.metrics.add(sample.metric_id)
        else:
            await ledger.timed("dashboard_series", metrics.dashboard_series(db, user_id=uid))


async def audit(url: str, ledger: Ledger) -> list[str]:
    """Every acknowledged write present exactly once; every counter equal to its rows."""
    problems = []
    conn = await asyncpg.connect(url)
    try:
        counts = dict(
            await conn.fetch(
                "SELECT c.conversation_id, c.message_count FROM conversations c"
                " WHERE c.conversation_id = ANY($1::uuid[])",
                list(ledger.conversations),
            )
        )
        rows = dict(
            await conn.fetch(
                "SELECT conversation_id, count(*) FROM messages"
                " WHERE conversation_id = ANY($1::uuid[]) GROUP BY conversation_id",
                list(ledger.conversations),
            )
        )
        for cid, acked in ledger.conversations.items():
            if cid not in counts:
                problems.append(f"conversation {cid} acknowledged but missing")
            elif not counts[cid] == rows.get(cid, 0) == acked:
                problems.append(
                    f"conversation {cid}: message_count {counts[cid]}, rows {rows.get(cid, 0)},"
                    f" acknowledged {acked}"
                )
        found = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE message_id = ANY($1::uuid[])",
            list(ledger.messages),
        )
        if found != len(ledger.messages):
            problems.append(f"messages: {len(ledger.messages)} acknowledged, {found} stored")
        found = await conn.fetchval(
            "SELECT count(*) FROM metrics WHERE metric_id = ANY($1::uuid[])", list(ledger.metrics)
        )
        if found != len(ledger.metrics):
            problems.append(f"metrics: {len(ledger.metrics)} acknowledged, {found} stored")
        stored = {(r[0], r[1]) for r in await conn.fetch("SELECT user_id, key FROM memory_entries")}
        if missing := ledger.memories - stored:
            problems.append(f"memories: {len(missing)} acknowledged but missing")
    finally:
        await conn.close()
    return problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(url: str, args: argparse.Namespace) -> int:
    settings = stratus_sql.Settings.load(pool_min_size=args.pool, pool_max_size=args.pool)
    target = url
    if args.pgbouncer_port:  # PgBouncer in transaction pooling mode, on this host
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        target = urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{args.pgbouncer_port}"))
        settings = stratus_sql.Settings.load(
            pool_min_size=args.pool,
            pool_max_size=args.pool,
            statement_cache_size=0,
            listen_url=url,
            database_url=target,
        )
    ledger = Ledger()
    async with await stratus_sql.connect(target, settings=settings) as db:
        started = time.monotonic()
        until = started + args.seconds
        think = args.think_ms / 1000
        await asyncio.gather(
            *(simulated_user(db, ledger, n, until, think) for n in range(args.users))
        )
        elapsed = time.monotonic() - started
    total = sum(len(v) for v in ledger.latencies.values())
    print(
        f"{args.users} users, {elapsed:.1f} s, pool {args.pool}, think {args.think_ms:g} ms:"
        f" {total / elapsed:,.0f} ops/s"
    )
    print("| operation | calls | ops/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, values in sorted(ledger.latencies.items()):
        print(
            f"| {name} | {len(values):,} | {len(values) / elapsed:,.0f} |"
            f" {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} |"
        )
    print(f"errors: {dict(ledger.errors) or 'none'}")
    problems = await audit(url, ledger)
    print(
        f"audit: {len(ledger.conversations):,} conversations, {len(ledger.messages):,} messages,"
        f" {len(ledger.memories):,} memories, {len(ledger.metrics):,} metrics acknowledged:"
        f" {'all present exactly once, counters match' if not problems else 'PROBLEMS'}"
    )
    for problem in problems[:20]:
        print("  ", problem)
    return 1 if problems or ledger.errors else 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument(
        "--pgbouncer-port", type=int, default=0, help="go through PgBouncer on this local port"
    )
    parser.add_argument(
        "--think-ms", type=float, default=0, help="mean pause between a user's operations"
    )
    args = parser.parse_args()
    with throwaway_database("stratus_load") as url:
        stratus_sql.apply_migrations(url)
        return await run(url, args)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
