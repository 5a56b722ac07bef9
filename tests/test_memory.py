"""queries.memory on both backends: upsert, expiry, access counting, search, the cache."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Required, TypedDict

import pytest

import stratus_sql
from stratus_sql import Database, Executor, InvalidInput, NotFound
from stratus_sql.queries import memory, users
from stratus_sql.records import MemoryEntry, MemoryType, User
from tests.checks import present

HOUR = timedelta(hours=1)


async def remember(
    db: Executor,
    user: User,
    key: str,
    value: object,
    *,
    memory_type: str = "long_term",
    importance_score: float = 0.5,
    expires_at: datetime | None = None,
) -> MemoryEntry:
    return await memory.store_memory(
        db,
        user_id=user.user_id,
        key=key,
        value=value,
        memory_type=memory_type,
        importance_score=importance_score,
        expires_at=expires_at,
    )


@pytest.mark.parametrize(
    "value",
    [
        "Cessna 172",
        42,
        3.5,
        True,
        None,
        [1, "dois", {"três": 3}],
        {"icao": "SBGR", "pistas": ["09L", "27R"]},
    ],
)
async def test_store_and_get_round_trip_any_json_value(
    db: Database, user: User, value: object
) -> None:
    stored = await remember(db, user, "chave", value, memory_type="critical", importance_score=1)
    assert stored.value == value
    assert (stored.access_count, stored.last_accessed_at, stored.expires_at) == (0, None, None)
    read = await memory.get_memory(db, user.user_id, "chave")
    assert read is not None
    assert read.model_dump(exclude={"access_count", "last_accessed_at"}) == stored.model_dump(
        exclude={"access_count", "last_accessed_at"}
    )
    assert read.access_count == 1
    assert read.last_accessed_at is not None


async def test_second_store_replaces_but_keeps_access_count(db: Database, user: User) -> None:
    first = await remember(db, user, "preferred_aircraft", "Cessna 152", memory_type="short_term")
    await memory.get_memory(db, user.user_id, "preferred_aircraft")
    await memory.get_memory(db, user.user_id, "preferred_aircraft")
    later = datetime.now(UTC) + HOUR
    second = await remember(
        db,
        user,
        "preferred_aircraft",
        "Cessna 172",
        memory_type="long_term",
        importance_score=0.8,
        expires_at=later,
    )
    assert second.memory_id == first.memory_id
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert (second.value, second.memory_type, second.importance_score) == (
        "Cessna 172",
        MemoryType.LONG_TERM,
        0.8,
    )
    assert second.expires_at == later
    assert second.access_count == 2


async def test_expired_entries_are_invisible_before_any_purge(db: Database, user: User) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    await remember(db, user, "expirada", "Cessna antigo", expires_at=past)
    await remember(db, user, "valida", "Cessna novo", expires_at=datetime.now(UTC) + HOUR)
    assert await memory.get_memory(db, user.user_id, "expirada") is None
    assert await memory.get_memory(db, user.user_id, "valida") is not None
    assert [h.entry.key for h in await memory.search_memories(db, user.user_id, "cessna")] == [
        "valida"
    ]


async def test_purge_expired_deletes_in_batches(db: Database, user: User) -> None:
    past = datetime.now(UTC) - HOUR
    for i in range(7):
        await remember(db, user, f"velha{i}", i, expires_at=past)
    await remember(db, user, "eterna", "fica")
    removed = await memory.purge_expired(db, batch_size=3)
    assert removed >= 7
    assert await memory.purge_expired(db, batch_size=3) == 0
    assert await memory.get_memory(db, user.user_id, "eterna") is not None
    assert await memory.forget_memory(db, user.user_id, "velha0") is False
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidInput, match="batch_size"):
            # wrong types on purpose: the refusal is what is tested
            await memory.purge_expired(db, batch_size=bad)  # type: ignore[arg-type]


async def test_forget_memory(db: Database, user: User) -> None:
    await remember(db, user, "temporaria", "x")
    assert await memory.forget_memory(db, user.user_id, "temporaria") is True
    assert await memory.get_memory(db, user.user_id, "temporaria") is None
    assert await memory.forget_memory(db, user.user_id, "temporaria") is False


async def test_store_for_unknown_user_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await memory.store_memory(
            db, user_id=uuid.uuid4(), key="k", value=1, memory_type="critical", importance_score=0.5
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key", ""),
        ("key", "k" * 201),
        ("key", "k\x00"),
        ("key", " a "),
        ("key", "a\n"),
        ("value", {"k": math.nan}),
        ("value", "\x00"),
        ("value", {1, 2}),
        ("memory_type", "forever"),
        ("importance_score", 1.01),
        ("importance_score", -0.1),
        ("importance_score", math.nan),
        ("importance_score", "0.5"),
        ("expires_at", datetime(2030, 1, 1)),
        ("expires_at", "2030-01-01"),
    ],
)
async def test_store_rejects_bad_input_and_writes_nothing(
    db: Database, user: User, field: str, value: object
) -> None:
    kwargs: dict[str, object] = {
        "key": "alvo",
        "value": "v",
        "memory_type": "long_term",
        "importance_score": 0.5,
    }
    kwargs[field] = value
    with pytest.raises(InvalidInput, match=field):
        # wrong types on purpose: the refusal is what is tested
        await memory.store_memory(db, user_id=user.user_id, **kwargs)  # type: ignore[arg-type]
    assert await memory.get_memory(db, user.user_id, "alvo") is None


async def test_a_padded_key_is_refused_not_taken_for_another(db: Database, user: User) -> None:
    stored = await remember(db, user, "a", "v")
    for call in (memory.get_memory, memory.forget_memory):
        with pytest.raises(InvalidInput, match=r"key: .*white space"):
            await call(db, user.user_id, " a ")
    found = await memory.get_memory(db, user.user_id, "a")  # not forgotten either
    assert found is not None
    assert found.memory_id == stored.memory_id


async def test_search_finds_words_ignoring_accents_case_and_word_endings(
    db: Database, user: User
) -> None:
    await remember(db, user, "preferred_aircraft", "Cessna 172", importance_score=0.8)
    await remember(
        db,
        user,
        "aeródromo_base",
        {"icao": "SBGR", "nome": "Guarulhos"},
        memory_type="critical",
        importance_score=0.9,
    )
    await remember(db, user, "observação", "Prefere voar de manhã", importance_score=0.3)
    for query, key in [
        ("cessna", "preferred_aircraft"),
        ("CESSNA 172", "preferred_aircraft"),
        ("cess", "preferred_aircraft"),
        ("aircraft", "preferred_aircraft"),
        ("aerodromo", "aeródromo_base"),
        ("GUARULHOS", "aeródromo_base"),
        ("manha", "observação"),
        ("observacao", "observação"),
    ]:
        hits = await memory.search_memories(db, user.user_id, query)
        assert hits, query
        assert hits[0].entry.key == key, query
        assert 0 < hits[0].score <= 1


async def test_search_tolerates_a_typo_on_postgres(pg_url: str) -> None:
    async with await stratus_sql.connect(pg_url) as db:
        user = await users.create_user(
            db, name="Ana", email=f"a.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        await remember(db, user, "preferred_aircraft", "Cessna 172")
        assert [h.entry.key for h in await memory.search_memories(db, user.user_id, "cesna")] == [
            "preferred_aircraft"
        ]


async def test_search_ranks_by_importance_and_type_and_filters(db: Database, user: User) -> None:
    await remember(db, user, "a", "rota SBGR SBRJ", importance_score=0.2)
    await remember(db, user, "b", "rota SBGR SBSP", importance_score=0.9, memory_type="critical")
    await remember(db, user, "c", "rota SBGR SBKP", importance_score=0.6, memory_type="short_term")
    hits = await memory.search_memories(db, user.user_id, "rota")
    assert [h.entry.key for h in hits] == ["b", "c", "a"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    only = await memory.search_memories(
        db, user.user_id, "rota", memory_types=["short_term", MemoryType.CRITICAL]
    )
    assert [h.entry.key for h in only] == ["b", "c"]
    assert [
        h.entry.key for h in await memory.search_memories(db, user.user_id, "rota", limit=1)
    ] == ["b"]


async def test_search_sees_only_the_callers_memories(db: Database, user: User) -> None:
    other = await users.create_user(
        db, name="Outro", email=f"o.{uuid.uuid4().hex[:8]}@x.com", role="mechanic"
    )
    await remember(db, other, "segredo", "Cessna do outro")
    assert await memory.search_memories(db, user.user_id, "cessna") == []


@pytest.mark.parametrize(
    "query",
    [
        "'; DELETE FROM memory_entries; --",
        "&|!:*()",
        '"unbalanced',
        "NEAR(a b)",
        "a OR AND NOT",
        "",
        "   ",
        "*",
        "x" * 1000,
    ],
)
async def test_search_treats_any_query_as_words(db: Database, user: User, query: str) -> None:
    await remember(db, user, "k", "valor")
    assert await memory.search_memories(db, user.user_id, query) == []
    assert await memory.get_memory(db, user.user_id, "k") is not None


class SearchArguments(TypedDict, total=False):
    query: Required[str]
    limit: int
    memory_types: list[MemoryType | str]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"query": "x" * 1001}, "query"),
        ({"query": "cessna " * 1500}, "query"),
        ({"query": "a\x00b"}, "query"),
        ({"query": "a", "limit": 0}, "limit"),
        ({"query": "a", "limit": 101}, "limit"),
        ({"query": "a", "memory_types": ["forever"]}, "memory_types"),
    ],
)
async def test_search_rejects_bad_arguments(
    db: Database, user: User, kwargs: SearchArguments, field: str
) -> None:
    with pytest.raises(InvalidInput, match=field):
        await memory.search_memories(db, user.user_id, **kwargs)


async def test_cached_reads_still_count_accesses(database_url: str) -> None:
    async with await stratus_sql.connect(database_url) as db:
        user = await users.create_user(
            db, name="Ana", email=f"c.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        await remember(db, user, "k", "v")
        # On Postgres the store also comes back as a NOTIFY: let it land before reading.
        await until(
            lambda: db.cache_stats().invalidations >= (2 if db.dialect == "postgres" else 1)
        )
        reads = [await memory.get_memory(db, user.user_id, "k") for _ in range(5)]
        assert [r.access_count for r in reads if r] == [1, 2, 3, 4, 5]
        assert db.cache_stats().hits == 4
    async with await stratus_sql.connect(
        database_url, settings=stratus_sql.Settings.load(memory_cache_size=0)
    ) as raw:
        entry = await memory.get_memory(raw, user.user_id, "k")  # uncached: counts itself too
        assert entry is not None
        assert entry.access_count == 6


async def test_cached_accesses_are_flushed_within_a_second(database_url: str) -> None:
    async with (
        await stratus_sql.connect(database_url) as db,
        await stratus_sql.connect(
            database_url, settings=stratus_sql.Settings.load(memory_cache_size=0)
        ) as other,
    ):
        user = await users.create_user(
            db, name="Ana", email=f"f.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        await remember(db, user, "k", "v")
        for _ in range(3):
            await memory.get_memory(db, user.user_id, "k")
        await asyncio.sleep(1.5)
        seen = await memory.get_memory(other, user.user_id, "k")
        assert seen is not None
        assert seen.access_count == 4


async def test_writes_through_the_database_invalidate_its_cache(db: Database, user: User) -> None:
    await remember(db, user, "k", "antes")
    assert present(await memory.get_memory(db, user.user_id, "k")).value == "antes"
    assert [h.entry.value for h in await memory.search_memories(db, user.user_id, "antes")] == [
        "antes"
    ]
    await remember(db, user, "k", "depois")
    assert present(await memory.get_memory(db, user.user_id, "k")).value == "depois"
    assert await memory.search_memories(db, user.user_id, "antes") == []
    async with db.transaction() as tx:
        await remember(tx, user, "k", "na transação")
        assert present(await memory.get_memory(tx, user.user_id, "k")).value == "na transação"
    assert present(await memory.get_memory(db, user.user_id, "k")).value == "na transação"
    await memory.forget_memory(db, user.user_id, "k")
    assert await memory.get_memory(db, user.user_id, "k") is None
    assert db.cache_stats().invalidations >= 3


async def test_a_committed_write_elsewhere_is_seen_at_once_on_postgres(
    pg_url: str,
) -> None:
    url = pg_url
    settings = stratus_sql.Settings.load(memory_cache_ttl=300)
    async with (
        await stratus_sql.connect(url, settings=settings) as a,
        await stratus_sql.connect(url, settings=settings) as b,
    ):
        user = await users.create_user(
            a, name="Ana", email=f"n.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        await remember(a, user, "k", "antes")
        # Each committed store reaches b as a NOTIFY; the event loop reads it within moments.
        await until(lambda: b.cache_stats().invalidations >= 1)
        assert present(await memory.get_memory(b, user.user_id, "k")).value == "antes"
        assert present(await memory.get_memory(b, user.user_id, "k")).value == "antes"
        assert b.cache_stats().hits == 1
        await remember(a, user, "k", "depois")
        await until(lambda: b.cache_stats().invalidations >= 2)
        assert present(await memory.get_memory(b, user.user_id, "k")).value == "depois"


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Wait until `condition()` holds, failing after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_cache_can_be_turned_off(database_url: str) -> None:
    settings = stratus_sql.Settings.load(memory_cache_size=0)
    async with await stratus_sql.connect(database_url, settings=settings) as db:
        user = await users.create_user(
            db, name="Ana", email=f"o.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        await remember(db, user, "k", "v")
        await memory.get_memory(db, user.user_id, "k")
        await memory.get_memory(db, user.user_id, "k")
        assert db.cache_stats().hits == 0
        assert db.cache_stats().misses == 0


async def age_entry(database_url: str, memory_id: uuid.UUID, days: int) -> None:
    """Move an entry's updated_at `days` into the past, behind the layer's back."""
    when = datetime.now(UTC) - timedelta(days=days)
    if database_url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE memory_entries SET updated_at = $1 WHERE memory_id = $2", when, memory_id
            )
        finally:
            await conn.close()
    else:
        import sqlite3

        from stratus_sql.drivers.sqlite import install_functions

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as raw:
            install_functions(raw)
            raw.execute(
                "UPDATE memory_entries SET updated_at = ? WHERE memory_id = ?",
                [when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), str(memory_id)],
            )


async def test_scores_decay_with_age_by_type_and_critical_never_decays(
    db: Database, user: User, database_url: str
) -> None:
    fresh = await remember(db, user, "fresh", "manutencao do motor", importance_score=0.5)
    old = await remember(db, user, "old", "manutencao do motor", importance_score=0.5)
    vital = await remember(
        db, user, "vital", "manutencao do motor", importance_score=0.5, memory_type="critical"
    )
    await age_entry(database_url, old.memory_id, 90)
    await age_entry(database_url, vital.memory_id, 90)
    hits = {
        h.entry.key: h.score for h in await memory.search_memories(db, user.user_id, "manutencao")
    }
    assert set(hits) == {"fresh", "old", "vital"}
    assert hits["old"] == pytest.approx(hits["fresh"] * 90 / (90 + 90), rel=0.01)
    assert hits["vital"] == pytest.approx(hits["fresh"], rel=0.01)
    assert fresh.memory_type is MemoryType.LONG_TERM


async def test_values_of_every_json_type_are_searched_alike(db: Database, user: User) -> None:
    await remember(db, user, "flag", True)
    await remember(db, user, "count", 172)
    assert [h.entry.key for h in await memory.search_memories(db, user.user_id, "true")] == ["flag"]
    assert [h.entry.key for h in await memory.search_memories(db, user.user_id, "172")] == ["count"]


async def test_expiry_at_the_edges_of_time_is_refused(db: Database, user: User) -> None:
    for when in (datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC)):
        with pytest.raises(InvalidInput, match="expires_at"):
            await remember(db, user, "k", "v", expires_at=when)
