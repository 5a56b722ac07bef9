"""Per-call cost of the layer against the raw driver running the same SQL, in one run.

    python bench/calls.py [--rounds 8] [--calls 300] [--url postgresql://...]

Each query function is timed against asyncpg sending the statement's own text and arguments
on a pool set up like the layer's (the same Settings, orjson codecs, no reset query on
release), its rows turned into records by `model_validate`. Layer and raw alternate round by
round after a warm-up, so machine noise hits both alike; the ratio of p50s is the layer's
per-call overhead. `get_user` is also compared with psycopg 3 on its own pool (psycopg_pool),
and run by 10 tasks on pools of 10 connections for throughput. Without `--url`, a throwaway
database is created on the server (STRATUS_BENCH_SERVER, default the local one) and dropped
afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping
from itertools import cycle
from typing import Any

import asyncpg
import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from queries import timed
from throwaway import throwaway_database

import stratus_sql
from stratus_sql import Settings
from stratus_sql.queries import conversations, memory, users
from stratus_sql.records import MemoryEntry, Message, User

Call = Callable[[], Awaitable[object]]
TASKS = 10  # concurrent callers, and the pool size of both sides


def uuid7() -> uuid.UUID:
    """A time-ordered id like the layer's, so raw inserts land in the index alike."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    return uuid.UUID(int=value & ~(0x3 << 62) | 0x2 << 62)  # RFC 9562 variant


def args_of(params: tuple[str, ...], values: Mapping[str, Any]) -> tuple[Any, ...]:
    """The arguments in `$n` order."""
    return tuple(values[name] for name in params)


async def keep_session(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query, as the layer's do."""


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb's binary format is a version byte (1) followed by the JSON text.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=lambda value: b"\x01" + orjson.dumps(value),
        decoder=lambda data: orjson.loads(data[1:]),
    )
    await conn.set_type_codec(
        "json", schema="pg_catalog", format="binary", encoder=orjson.dumps, decoder=orjson.loads
    )


async def throughput(call: Call, n: int) -> list[float]:
    """Calls per second of TASKS tasks making `n` calls each."""

    async def worker() -> None:
        for _ in range(n):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return [TASKS * n / (time.perf_counter() - started)]


async def alternate(
    sides: dict[str, Call], rounds: int, measure: Callable[[Call], Awaitable[list[float]]]
) -> dict[str, list[float]]:
    """`measure` of each side in alternating rounds, after a warm-up round."""
    for call in sides.values():
        await measure(call)
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, call in sides.items():
            samples[name] += await measure(call)
    return samples


def line(name: str, ours: list[float], theirs: list[float]) -> str:
    """A table row in µs: both p50s, their ratio, both p95s."""
    a, b = ([q * 1e6 for q in statistics.quantiles(x, n=20)] for x in (ours, theirs))
    return (
        f"| {name} | {a[9]:,.0f} | {b[9]:,.0f} | {a[9] / b[9]:.2f}x | {a[18]:,.0f} | {b[18]:,.0f} |"
    )


async def run(url: str, args: argparse.Namespace) -> list[str]:
    stratus_sql.apply_migrations(url)
    settings = Settings.load(memory_cache_size=0, pool_max_size=TASKS)
    db = await stratus_sql.connect(url, settings=settings)
    raw = await asyncpg.create_pool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.command_timeout,
        statement_cache_size=settings.statement_cache_size,
        max_inactive_connection_lifetime=settings.max_inactive_lifetime,
        init=init_connection,
        reset=keep_session,
    )

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.set_autocommit(True)
        set_json_loads(orjson.loads, conn)

    pg = AsyncConnectionPool(
        url,
        min_size=TASKS,
        max_size=TASKS,
        kwargs={"row_factory": dict_row},
        configure=configure,
        open=False,
    )
    await pg.open(wait=True)
    try:
        tag, user_ids, keys = uuid.uuid4().hex[:8], [], []
        note: dict[str, Any] = {
            "value": {"texto": "METAR SBGR"},
            "memory_type": "long_term",
            "importance_score": 0.5,
        }
        for i in range(200):
            email = f"calls-{tag}-{i}@example.com"
            user_ids.append(
                (await users.create_user(db, name="P", email=email, role="pilot")).user_id
            )
            keys.append(f"nota_{tag}_{i}")
            await memory.store_memory(db, user_id=user_ids[0], key=keys[-1], **note)
        uid = user_ids[0]
        message: dict[str, Any] = {
            "user_id": uid,
            "content": "Qual o METAR de SBGR?",
            "message_type": "user_input",
            "metadata": {"canal": "app"},
            "tokens_used": 12,
        }
        paged = (
            await conversations.create_conversation(db, user_id=uid, title="a")
        ).conversation_id
        cid = (await conversations.create_conversation(db, user_id=uid, title="b")).conversation_id
        for _ in range(200):
            await conversations.add_message(db, conversation_id=paged, **message)

        get = users.STATEMENTS.get_user.for_dialect("postgres")
        mem = memory.STATEMENTS.get_memory.for_dialect("postgres")
        add = conversations.STATEMENTS.add_message.for_dialect("postgres")
        page = conversations.STATEMENTS.list_messages.for_dialect("postgres")
        # psycopg takes %(name)s placeholders; it prepares a statement on its fifth run.
        pg_get = re.sub(
            r"\$(\d+)", lambda m: f"%({get.params[int(m[1]) - 1]})s", get.text.replace("%", "%%")
        )
        # The arguments the layer sends for a page of 50: one row more says whether more follow.
        page_args = args_of(
            page.params,
            {"conversation_id": paged, "before_time": None, "before_id": None, "limit": 51},
        )
        ids_layer, ids_raw, ids_pg = cycle(user_ids), cycle(user_ids), cycle(user_ids)
        keys_layer, keys_raw = cycle(keys), cycle(keys)

        async def one(stmt: Any, record: type[BaseModel], values: dict[str, Any]) -> Any:
            """The statement run raw, its row validated as `record`."""
            found = await raw.fetchrow(stmt.text, *args_of(stmt.params, values))
            return None if found is None else record.model_validate(dict(found))

        async def get_user_pg() -> User | None:
            async with pg.connection() as conn:
                cursor = await conn.execute(pg_get, {"user_id": next(ids_pg)})
                found = await cursor.fetchone()
            return None if found is None else User.model_validate(found)

        async def list_messages_raw() -> list[Message]:
            return [Message.model_validate(dict(r)) for r in await raw.fetch(page.text, *page_args)]

        def get_user_layer() -> Awaitable[User | None]:
            return users.get_user(db, next(ids_layer))

        def get_user_raw() -> Awaitable[User | None]:
            return one(get, User, {"user_id": next(ids_raw)})

        new = {"conversation_id": cid, "agent_name": None, "response_time": None}
        comparisons: dict[str, dict[str, Call]] = {
            "`get_user`": {"layer": get_user_layer, "raw": get_user_raw, "psycopg": get_user_pg},
            "`get_memory`, uncached": {
                "layer": lambda: memory.get_memory(db, uid, next(keys_layer)),
                "raw": lambda: one(mem, MemoryEntry, {"user_id": uid, "key": next(keys_raw)}),
            },
            "`add_message`": {
                "layer": lambda: conversations.add_message(db, conversation_id=cid, **message),
                "raw": lambda: one(add, Message, {**message, **new, "message_id": uuid7()}),
            },
            "`list_messages`, a page of 50": {
                "layer": lambda: conversations.list_messages(db, paged, limit=50),
                "raw": list_messages_raw,
            },
        }
        got = {
            name: await alternate(sides, args.rounds, lambda call: timed(call, args.calls))
            for name, sides in comparisons.items()
        }
        rates = await alternate(
            {"layer": get_user_layer, "raw": get_user_raw, "psycopg": get_user_pg},
            args.rounds,
            lambda call: throughput(call, args.calls),
        )
    finally:
        await pg.close()
        await raw.close()
        await db.close()
    ours, theirs = statistics.median(rates["layer"]), statistics.median(rates["raw"])
    pgs = statistics.median(rates["psycopg"])
    return [
        "| operation | layer p50 µs | raw p50 µs | layer/raw | layer p95 µs | raw p95 µs |",
        "|---|---|---|---|---|---|",
        *(line(name, sides["layer"], sides["raw"]) for name, sides in got.items()),
        line("`get_user` vs psycopg 3", got["`get_user`"]["layer"], got["`get_user`"]["psycopg"]),
        "",
        "| concurrent `get_user` | layer calls/s | raw calls/s | layer/raw |",
        "|---|---|---|---|",
        f"| {TASKS} tasks, {TASKS} connections | {ours:,.0f} | {theirs:,.0f} "
        f"| {ours / theirs:.2f}x |",
        f"| the same, psycopg 3 pool | {ours:,.0f} | {pgs:,.0f} (psycopg) | {ours / pgs:.2f}x |",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=300, help="calls per side per round")
    parser.add_argument("--url", help="a PostgreSQL database to use (migrated if needed)")
    args = parser.parse_args()
    # The local server's role is a superuser; the layer warns about it once per pool.
    warnings.filterwarnings("ignore", message="stratus_sql is connected as a superuser")
    print(f"PostgreSQL, {args.rounds} alternating rounds of {args.calls} calls per side\n")
    if args.url:
        lines = await run(args.url, args)
    else:
        with throwaway_database("stratus_bench_calls") as url:
            lines = await run(url, args)
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
