"""The in-process memory cache: a bounded LRU with a time to live, per `Database`.

It sits in front of `memory.get_memory` and `memory.search_memories`. Every memory write made
through the same `Database` invalidates the user's entries (inside a transaction: again once
it commits); on PostgreSQL, a LISTEN on `stratus_memory` invalidates them for writes made by
any other process too. A read that started before an invalidation never stores its result
(per-user generations), so a value read just before a write cannot outlive it.

Reads served from the cache still count as accesses: they are added up here and written in
one statement at least every second, and on `Database.close()`.

`attach_cache(db)` gives a Database its cache (`connect()` does, unless
DB_MEMORY_CACHE_SIZE is 0); the memory queries reach it through `cache_of` and report their
writes through `memory_written`. The engine knows nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from stratus_sql.drivers.interface import Json
from stratus_sql.errors import CommitUnknown, StratusError, UsageError
from stratus_sql.sqlfiles import load_queries

if TYPE_CHECKING:
    from stratus_sql.engine.database import Database
    from stratus_sql.engine.executor import Executor

__all__ = [
    "CacheStats",
    "MemoryCache",
    "attach_cache",
    "cache_of",
    "cache_stats",
    "flush_accesses",
    "memory_written",
]

_FLUSH_SECONDS = 1.0
_CHANNEL = "stratus_memory"

_MISSING = object()


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    invalidations: int
    size: int


class MemoryCache:
    """Cached memory reads, by user, and the accesses they still owe the database."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.active = True  # False while invalidations may be missed (listener down)
        self._entries: OrderedDict[Hashable, tuple[float, UUID, Any]] = OrderedDict()
        self._keys_by_user: dict[UUID, set[Hashable]] = {}
        self._generations: dict[UUID, int] = {}
        self._epoch = 0  # bumped by clear(): reads begun before it never store
        self._accesses: dict[UUID, tuple[int, datetime]] = {}
        self._hits = self._misses = self._invalidations = 0

    def get(self, key: Hashable) -> Any:
        """The cached value, or `MemoryCache.MISSING`."""
        found = self._entries.get(key) if self.active else None
        if found is None or found[0] < time.monotonic():
            if found is not None:
                self._drop(key)
            self._misses += 1
            return _MISSING
        self._entries.move_to_end(key)
        self._hits += 1
        return found[2]

    MISSING = _MISSING

    def generation(self, user_id: UUID) -> tuple[int, int]:
        """Read before querying; pass to `put`, which ignores results older than a write."""
        return self._epoch, self._generations.get(user_id, 0)

    def put(
        self,
        key: Hashable,
        user_id: UUID,
        value: Any,
        generation: tuple[int, int],
        ttl: float | None = None,
    ) -> None:
        if not self.active or generation != self.generation(user_id):
            return
        lifetime = self.ttl if ttl is None else min(self.ttl, ttl)
        if lifetime <= 0:
            return
        self._entries[key] = (time.monotonic() + lifetime, user_id, value)
        self._entries.move_to_end(key)
        self._keys_by_user.setdefault(user_id, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def refresh(self, key: Hashable, value: Any) -> None:
        """Replace a cached value, keeping its expiry (a hit that changed what it read)."""
        found = self._entries.get(key)
        if found is not None:
            self._entries[key] = (found[0], found[1], value)

    def invalidate(self, user_id: UUID) -> None:
        """Forget every cached read of this user's memories."""
        if len(self._generations) > 4 * self.max_entries:
            self.clear()  # the epoch guards every user at once; the counters can go
            self._generations.clear()
        self._generations[user_id] = self._generations.get(user_id, 0) + 1
        self._invalidations += 1
        for key in self._keys_by_user.pop(user_id, ()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (when invalidations may have been missed)."""
        self._epoch += 1
        self._invalidations += 1
        self._entries.clear()
        self._keys_by_user.clear()

    def count_access(self, memory_id: UUID, at: datetime) -> None:
        count, _ = self._accesses.get(memory_id, (0, at))
        self._accesses[memory_id] = (count + 1, at)

    def owed_accesses(self, memory_id: UUID) -> int:
        return self._accesses.get(memory_id, (0, None))[0]

    def take_accesses(self) -> list[dict[str, Any]]:
        """The accesses not yet written, as `{memory_id, n, at}`; the cache forgets them."""
        taken, self._accesses = self._accesses, {}
        return [
            # The one text format both backends read as a UTC timestamp.
            {"memory_id": str(m), "n": n, "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
            for m, (n, at) in taken.items()
        ]

    def return_accesses(self, batch: list[dict[str, Any]]) -> None:
        """Put back accesses whose write failed, to be tried again."""
        for item in batch:
            memory_id = UUID(item["memory_id"])
            count, at = self._accesses.get(memory_id, (0, None))
            at = at or datetime.strptime(item["at"], "%Y-%m-%dT%H:%M:%S.%f%z")
            self._accesses[memory_id] = (count + item["n"], at)

    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, self._invalidations, len(self._entries))

    def _drop(self, key: Hashable) -> None:
        _, user_id, _ = self._entries.pop(key)
        keys = self._keys_by_user.get(user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys_by_user[user_id]


def cache_of(db: Executor) -> MemoryCache | None:
    """The memory cache to read through: None when there is none, or inside a transaction
    (whose reads must see its own writes). UsageError on a closed database."""
    database = db.database
    if database.closed:
        raise UsageError("the database is closed")
    link: _Link | None = database.attachments.get(_Link)
    if link is None or db.in_transaction:
        return None
    link.start_flushing(database)
    return link.cache


def cache_stats(db: Database) -> CacheStats:
    """Hits, misses, invalidations and size of `db`'s cache (all 0 without one)."""
    link: _Link | None = db.attachments.get(_Link)
    return CacheStats(0, 0, 0, 0) if link is None else link.cache.stats()


def memory_written(db: Executor, user_id: UUID) -> None:
    """A user's memories changed: drop their cached reads now and, inside a transaction,
    again once it commits (readers may have cached what it replaced meanwhile)."""
    link: _Link | None = db.database.attachments.get(_Link)
    if link is not None:
        link.cache.invalidate(user_id)
        if db.in_transaction:
            db.on_commit(lambda: link.cache.invalidate(user_id))


async def flush_accesses(db: Database) -> None:
    """Write the accesses served from `db`'s cache so far (done every second anyway)."""
    link: _Link | None = db.attachments.get(_Link)
    if link is not None:
        await link.flush(db)


async def attach_cache(db: Database, max_entries: int, ttl: float) -> MemoryCache:
    """Give `db` a memory cache. Where the database can notify (PostgreSQL), writes made by
    other processes invalidate it too; while that listener is down the cache is off."""
    link = _Link(MemoryCache(max_entries, ttl))
    db.attachments[_Link] = link
    db.before_close(lambda: link.close(db))
    await db.listen(_CHANNEL, link.on_notice, link.on_state)
    return link.cache


class _Link:
    """A cache attached to one Database: its listener callbacks and its access flusher."""

    def __init__(self, cache: MemoryCache) -> None:
        self.cache = cache
        self._flusher: asyncio.Task[None] | None = None

    def on_notice(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.cache.invalidate(UUID(payload))

    def on_state(self, up: bool) -> None:
        if not up or not self.cache.active:  # down: notices may be missed; back: forget
            self.cache.clear()  # what was missed meanwhile
        self.cache.active = up

    def start_flushing(self, db: Database) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(db))

    async def _flush_forever(self, db: Database) -> None:
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            with contextlib.suppress(StratusError):  # kept, and tried again next second
                await self.flush(db)

    async def flush(self, db: Database) -> None:
        """Write the accesses served from the cache since the last flush."""
        batch = self.cache.take_accesses()
        if not batch:
            return
        try:
            await db.execute_rows(load_queries("memory").count_accesses, batch=Json(batch))
        except CommitUnknown:
            raise  # it may have been counted: dropping the batch undercounts, never doubles
        except StratusError:
            self.cache.return_accesses(batch)  # not applied: counted at the next flush
            raise

    async def close(self, db: Database) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush(db)
