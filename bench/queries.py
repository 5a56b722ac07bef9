"""Query functions against raw asyncpg running the same SQL, on one Postgres, in one run.

    python bench/queries.py [--memories 100000] [--users 100] [--rounds 5]

Measured: `add_message`, a 50-message page, `get_memory` uncached and cached, and
`search_memories` over `--memories` entries spread over `--users` users. Each operation runs
in alternating rounds (layer, raw, layer, raw, ...) so that machine noise hits both alike;
the ratio of medians is what the layer costs over the driver. A throwaway database is
created on the server (STRATUS_BENCH_SERVER, default the local one) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from throwaway import throwaway_database

import stratus_sql
from stratus_sql.drivers.pgconnect import init_connection as _init_connection
from stratus_sql.drivers.pgconnect import keep_session as _keep_session
from stratus_sql.ids import uuid7
from stratus_sql.queries import conversations, memory, users

WORDS = [
    "cessna",
    "piper",
    "embraer",
    "airbus",
    "boeing",
    "metar",
    "taf",
    "notam",
    "sbgr",
    "sbsp",
    "sbrj",
    "sbkp",
    "sbbr",
    "rota",
    "voo",
    "pista",
    "vento",
    "nuvem",
    "teto",
    "visibilidade",
    "chuva",
    "trovoada",
    "gelo",
    "combustivel",
    "manutencao",
    "revisao",
    "motor",
    "helice",
    "trem",
    "pouso",
    "decolagem",
    "aproximacao",
    "ifr",
    "vfr",
    "checklist",
    "instrutor",
    "aluno",
    "licenca",
    "habilitacao",
    "exame",
    "medico",
    "tempo",
    "altitude",
    "velocidade",
    "proa",
    "radial",
    "frequencia",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def compare(
    name: str,
    layer: Callable[[], Awaitable[Any]],
    raw: Callable[[], Awaitable[Any]] | None,
    n: int,
    rounds: int,
) -> dict[str, Any]:
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        ours += await timed(layer, n)
        if raw is not None:
            theirs += await timed(raw, n)
    row = {
        "name": name,
        "p50_us": statistics.median(ours) * 1e6,
        "p95_us": percentile(ours, 0.95) * 1e6,
    }
    if theirs:
        row["raw_p50_us"] = statistics.median(theirs) * 1e6
        row["ratio"] = statistics.median(ours) / statistics.median(theirs)
    return row


async def load(url: str, n_users: int, n_memories: int) -> list[uuid.UUID]:
    """Users and memories loaded with COPY (the search columns fill themselves)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    user_ids = [uuid7() for _ in range(n_users)]
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "users",
            records=[
                (u, f"Piloto {i}", f"bench{i}@example.com", "pilot", "[]", "{}", now)
                for i, u in enumerate(user_ids)
            ],
            columns=["user_id", "name", "email", "role", "licenses", "preferences", "created_at"],
        )
        types = ["short_term", "medium_term", "long_term", "critical"]
        rows = []
        for i in range(n_memories):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            rows.append(
                (
                    uuid7(),
                    user_ids[i % n_users],
                    rng.choice(types),
                    f"nota_{i}",
                    orjson.dumps(text).decode(),
                    rng.random(),
                    now,
                    now,
                )
            )
        await conn.copy_records_to_table(
            "memory_entries",
            records=rows,
            columns=[
                "memory_id",
                "user_id",
                "memory_type",
                "key",
                "value",
                "importance_score",
                "created_at",
                "updated_at",
            ],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return user_ids


async def run(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    stratus_sql.apply_migrations(url)
    user_ids = await load(url, args.users, args.memories)
    uncached = stratus_sql.Settings.load(memory_cache_size=0)
    db = await stratus_sql.connect(url, settings=uncached)
    cached_db = await stratus_sql.connect(url)
    # The same pool set-up as the layer's: orjson codecs, no reset query on release.
    raw = await asyncpg.create_pool(
        url, min_size=1, max_size=10, init=_init_connection, reset=_keep_session
    )
    results = []
    try:
        user = await users.get_user(db, user_ids[0])
        assert user is not None
        conv = await conversations.create_conversation(db, user_id=user.user_id, title="bench")
        for i in range(200):
            await conversations.add_message(
                db,
                conversation_id=conv.conversation_id,
                user_id=user.user_id,
                content=f"mensagem {i}",
                message_type="user_input",
                tokens_used=10,
            )

        add = conversations.STATEMENTS.add_message.for_dialect("postgres")

        async def add_layer() -> None:
            await conversations.add_message(
                db,
                conversation_id=conv.conversation_id,
                user_id=user.user_id,
                content="Qual o METAR de SBGR?",
                message_type="user_input",
                metadata={"canal": "app"},
                tokens_used=12,
            )

        async def add_raw() -> None:
            params = {
                "message_id": uuid7(),
                "conversation_id": conv.conversation_id,
                "user_id": user.user_id,
                "agent_name": None,
                "message_type": "user_input",
                "content": "Qual o METAR de SBGR?",
                "metadata": {"canal": "app"},
                "tokens_used": 12,
                "response_time": None,
            }
            await raw.fetchrow(add.text, *add.positional(params))

        results.append(await compare("add_message", add_layer, add_raw, 200, args.rounds))

        page = conversations.STATEMENTS.list_messages.for_dialect("postgres")
        results.append(
            await compare(
                "list_messages (50)",
                lambda: conversations.list_messages(db, conv.conversation_id, limit=50),
                lambda: raw.fetch(
                    page.text,
                    *page.positional(
                        {
                            "conversation_id": conv.conversation_id,
                            "before_time": None,
                            "before_id": None,
                            "limit": 51,
                        }
                    ),
                ),
                200,
                args.rounds,
            )
        )

        keys = [f"nota_{i}" for i in range(0, args.memories, args.users)][:200]
        get = memory.STATEMENTS.get_memory.for_dialect("postgres")
        pick = iter(range(10**9))

        def key() -> str:
            return keys[next(pick) % len(keys)]

        results.append(
            await compare(
                "get_memory (uncached)",
                lambda: memory.get_memory(db, user_ids[0], key()),
                lambda: raw.fetchrow(
                    get.text, *get.positional({"user_id": user_ids[0], "key": key()})
                ),
                300,
                args.rounds,
            )
        )
        for k in keys:  # warm the cache
            await memory.get_memory(cached_db, user_ids[0], k)
        results.append(
            await compare(
                "get_memory (cached)",
                lambda: memory.get_memory(cached_db, user_ids[0], key()),
                None,
                3000,
                args.rounds,
            )
        )

        search = memory.STATEMENTS.search_memories.for_dialect("postgres")
        rng = random.Random(11)

        def query() -> tuple[uuid.UUID, str]:
            return rng.choice(user_ids), " ".join(rng.sample(WORDS, 2))

        async def search_layer() -> None:
            uid, q = query()
            await memory.search_memories(db, uid, q)

        async def search_raw() -> None:
            uid, q = query()
            params = {"terms": q.split(), "user_id": uid, "memory_types": None, "limit": 10}
            await raw.fetch(search.text, *search.positional(params))

        results.append(await compare("search_memories", search_layer, search_raw, 100, args.rounds))
    finally:
        await raw.close()
        await db.close()
        await cached_db.close()
    return results


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"PostgreSQL, {args.memories} memories of {args.users} users, "
        f"{args.rounds} alternating rounds"
    )
    print(f"{'operation':24} {'p50 µs':>9} {'p95 µs':>9} {'raw p50 µs':>11} {'layer/raw':>10}")
    for row in results:
        raw = f"{row['raw_p50_us']:11.0f}" if "raw_p50_us" in row else f"{'-':>11}"
        ratio = f"{row['ratio']:9.2f}x" if "ratio" in row else f"{'-':>10}"
        print(f"{row['name']:24} {row['p50_us']:9.0f} {row['p95_us']:9.0f} {raw} {ratio}")
    by_name = {r["name"]: r for r in results}
    speedup = by_name["get_memory (uncached)"]["p50_us"] / by_name["get_memory (cached)"]["p50_us"]
    print(f"cached get_memory is {speedup:.0f}x faster than uncached (p50)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with throwaway_database("stratus_bench") as url:
        report(await run(url, args), args)


if __name__ == "__main__":
    asyncio.run(main())
