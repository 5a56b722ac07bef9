"""The memory cache on its own (no database), and its PostgreSQL listener under a fault."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

import stratus_sql
from stratus_sql.cache import MemoryCache, flush_accesses
from stratus_sql.queries import memory, users
from tests.checks import present

U1, U2 = uuid.uuid4(), uuid.uuid4()


def test_lru_keeps_at_most_max_entries() -> None:
    cache = MemoryCache(max_entries=2, ttl=60)
    for i in range(3):
        cache.put(("get", U1, i), U1, i, cache.generation(U1))
    assert cache.get(("get", U1, 0)) is MemoryCache.MISSING
    assert cache.get(("get", U1, 2)) == 2
    cache.get(("get", U1, 1))  # now the most recent
    cache.put(("get", U1, 3), U1, 3, cache.generation(U1))
    assert cache.get(("get", U1, 1)) == 1
    assert cache.get(("get", U1, 2)) is MemoryCache.MISSING
    assert cache.stats().size == 2


def test_entries_expire_after_their_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache = MemoryCache(max_entries=10, ttl=30)
    cache.put("a", U1, "A", cache.generation(U1))
    cache.put("b", U1, "B", cache.generation(U1), ttl=5)  # capped by the entry's own expiry
    now[0] += 10
    assert cache.get("a") == "A"
    assert cache.get("b") is MemoryCache.MISSING
    now[0] += 25
    assert cache.get("a") is MemoryCache.MISSING
    cache.put("c", U1, "C", cache.generation(U1), ttl=-1)  # already expired: not stored
    assert cache.get("c") is MemoryCache.MISSING


def test_invalidation_drops_one_users_reads_and_stale_puts() -> None:
    cache = MemoryCache(max_entries=10, ttl=60)
    cache.put("a1", U1, 1, cache.generation(U1))
    cache.put("b1", U2, 2, cache.generation(U2))
    before_write = cache.generation(U1)
    cache.invalidate(U1)
    assert cache.get("a1") is MemoryCache.MISSING
    assert cache.get("b1") == 2
    cache.put("a1", U1, "read before the write", before_write)
    assert cache.get("a1") is MemoryCache.MISSING
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.invalidations) == (1, 2, 1)


def test_accesses_are_summed_and_can_be_returned_after_a_failed_write() -> None:
    cache = MemoryCache(max_entries=10, ttl=60)
    memory_id = uuid.uuid4()
    at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    for _ in range(3):
        cache.count_access(memory_id, at)
    batch = cache.take_accesses()
    assert batch == [{"memory_id": str(memory_id), "n": 3, "at": "2026-11-21T12:00:00.000000Z"}]
    assert cache.take_accesses() == []
    cache.return_accesses(batch)
    cache.count_access(memory_id, at)
    assert cache.owed_accesses(memory_id) == 4


async def test_the_cache_switches_off_while_its_listener_is_down(
    pg_url: str,
) -> None:
    url = pg_url
    async with await stratus_sql.connect(url) as db, await stratus_sql.connect(url) as other:
        user = await users.create_user(
            db, name="Ana", email=f"l.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        await memory.store_memory(
            db,
            user_id=user.user_id,
            key="k",
            value="antes",
            memory_type="critical",
            importance_score=1,
        )
        await memory.get_memory(db, user.user_id, "k")
        cache = db.memory_cache
        assert cache is not None
        killer = await asyncpg.connect(url)
        try:
            # The caches' own connections: the sessions of this database that listen (one
            # for `db`, one for `other`).
            killed = await killer.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            )
            assert killed == 2
        finally:
            await killer.close()
        for _ in range(100):
            if not cache.active:
                break
            await asyncio.sleep(0.02)
        assert not cache.active
        # Invalidations may be missed now, so reads go to the database.
        await memory.store_memory(
            other,
            user_id=user.user_id,
            key="k",
            value="depois",
            memory_type="critical",
            importance_score=1,
        )
        assert present(await memory.get_memory(db, user.user_id, "k")).value == "depois"
        for _ in range(150):
            if cache.active:
                break
            await asyncio.sleep(0.02)
        assert cache.active  # listening again, and empty
        assert cache.stats().size == 0


def test_clear_stops_reads_begun_before_it_from_storing() -> None:
    cache = MemoryCache(max_entries=10, ttl=60)
    never_written = uuid.uuid4()  # no invalidation yet: only the epoch can guard it
    before = cache.generation(never_written)
    cache.clear()
    cache.put("k", never_written, "stale", before)
    assert cache.get("k") is MemoryCache.MISSING


async def test_cached_access_counts_never_go_back_after_a_flush(database_url: str) -> None:
    async with await stratus_sql.connect(database_url) as db:
        user = await users.create_user(
            db, name="Ana", email=f"f.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        await memory.store_memory(
            db, user_id=user.user_id, key="k", value="v", memory_type="critical", importance_score=1
        )
        counts = []
        for _ in range(3):
            counts.append(present(await memory.get_memory(db, user.user_id, "k")).access_count)
        await flush_accesses(db)
        for _ in range(2):
            counts.append(present(await memory.get_memory(db, user.user_id, "k")).access_count)
        assert counts == sorted(counts)
        assert counts[-1] == 5


async def test_a_closed_database_serves_nothing_from_its_cache(database_url: str) -> None:
    db = await stratus_sql.connect(database_url)
    user = await users.create_user(
        db, name="Ana", email=f"c.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
    )
    await memory.store_memory(
        db, user_id=user.user_id, key="k", value="v", memory_type="critical", importance_score=1
    )
    await memory.get_memory(db, user.user_id, "k")
    await db.close()
    with pytest.raises(stratus_sql.UsageError, match="closed"):
        await memory.get_memory(db, user.user_id, "k")
