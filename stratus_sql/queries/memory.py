"""Agent memory: what the agents remember about each user, with expiry and relevance search.

An entry is unique per (user, key). Expired entries are invisible to every read from the
moment they expire; `purge_expired` removes them for good. Reads go through the Database's
in-process cache (see `stratus_sql.cache`) unless a transaction is open.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, Field

from stratus_sql.cache import cache_of, memory_written
from stratus_sql.engine import Executor, Json
from stratus_sql.errors import DatabaseError
from stratus_sql.ids import uuid7
from stratus_sql.queries._input import (
    Input,
    JsonDocument,
    NoNul,
    Unpadded,
    int_arg,
    text,
    uuid_arg,
    validate,
)
from stratus_sql.records import MemoryEntry, MemoryHit, MemoryType, ScoredMemoryEntry
from stratus_sql.sqlfiles import load_queries

__all__ = ["forget_memory", "get_memory", "purge_expired", "search_memories", "store_memory"]

STATEMENTS = load_queries("memory")

MAX_QUERY = 1_000
MAX_TERMS = 16
MAX_RESULTS = 100
# Letters and digits of any script; everything else (operators, quotes, punctuation) only
# separates words, so no query text reaches a search parser as syntax.
_WORD = re.compile(r"[^\W_]+")


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must be timezone-aware (UTC)")
    if value is not None and not 2 <= value.year <= 9998:
        raise ValueError("must fall between the years 2 and 9998")
    return value


class _NewMemory(Input):
    key: Annotated[str, text(200), NoNul, Unpadded]
    value: JsonDocument
    memory_type: MemoryType
    importance_score: Annotated[float, Field(ge=0, le=1, strict=True)]
    expires_at: Annotated[datetime | None, Field(strict=True), AfterValidator(_aware)]


class _Key(Input):
    key: Annotated[str, text(200), NoNul, Unpadded]


class _Search(Input):
    query: Annotated[str, Field(max_length=MAX_QUERY), NoNul]
    limit: Annotated[int, Field(ge=1, le=MAX_RESULTS, strict=True)]
    memory_types: list[MemoryType] | None


async def store_memory(
    db: Executor,
    *,
    user_id: UUID | str,
    key: str,
    value: Any,
    memory_type: MemoryType | str,
    importance_score: float,
    expires_at: datetime | None = None,
) -> MemoryEntry:
    """Store `value` (any JSON value) under `key` for the user. Storing the same key again
    replaces its value, type, importance and expiry, keeps its access count, and moves
    `updated_at`. An `expires_at` in the past is accepted: the entry is simply invisible.
    NotFound if the user does not exist."""
    uid = uuid_arg(user_id, "user_id")
    new = validate(
        _NewMemory,
        key=key,
        value=value,
        memory_type=memory_type,
        importance_score=importance_score,
        expires_at=expires_at,
    )
    entry = await db.fetch_one(
        MemoryEntry,
        STATEMENTS.store_memory,
        memory_id=uuid7(),
        user_id=uid,
        memory_type=new.memory_type,
        key=new.key,
        value=Json(new.value),
        importance_score=float(new.importance_score),
        expires_at=new.expires_at,
    )
    memory_written(db, uid)
    if entry is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError("store_memory returned no row")
    cache = cache_of(db)
    owed = 0 if cache is None else cache.owed_accesses(entry.memory_id)
    # Accesses served from the cache and not yet written still count.
    return entry.model_copy(update={"access_count": entry.access_count + owed}) if owed else entry


async def get_memory(db: Executor, user_id: UUID | str, key: str) -> MemoryEntry | None:
    """The user's unexpired entry under `key`, or None; counts the access (`access_count`,
    `last_accessed_at`). A read served by the cache is counted too, within a second."""
    uid = uuid_arg(user_id, "user_id")
    wanted = validate(_Key, key=key).key
    cache = cache_of(db)
    if cache is None:
        return await db.fetch_one(MemoryEntry, STATEMENTS.get_memory, user_id=uid, key=wanted)
    cache_key = ("get", uid, wanted)
    cached = cache.get(cache_key)
    now = datetime.now(UTC)
    if cached is not cache.MISSING:
        entry: MemoryEntry = cached
        if entry.expires_at is not None and entry.expires_at <= now:
            return None
        cache.count_access(entry.memory_id, now)
        # The cached entry counts this access too, so counts never go back after a flush.
        entry = entry.model_copy(
            update={"access_count": entry.access_count + 1, "last_accessed_at": now}
        )
        cache.refresh(cache_key, entry)
        return entry
    generation = cache.generation(uid)
    found = await db.fetch_one(MemoryEntry, STATEMENTS.get_memory, user_id=uid, key=wanted)
    if found is not None:
        owed = cache.owed_accesses(found.memory_id)  # served from the cache, not written yet
        if owed:
            found = found.model_copy(update={"access_count": found.access_count + owed})
        ttl = None if found.expires_at is None else (found.expires_at - now).total_seconds()
        cache.put(cache_key, uid, found, generation, ttl)
    return found


async def forget_memory(db: Executor, user_id: UUID | str, key: str) -> bool:
    """Delete the user's entry under `key`, expired or not; True if there was one."""
    uid = uuid_arg(user_id, "user_id")
    wanted = validate(_Key, key=key).key
    removed = await db.execute_rows(STATEMENTS.forget_memory, user_id=uid, key=wanted)
    memory_written(db, uid)
    return removed > 0


async def purge_expired(db: Executor, *, batch_size: int = 1000) -> int:
    """Delete every expired entry, `batch_size` rows per statement (each its own short
    transaction outside `db.transaction()`); returns how many were deleted."""
    batch_size = int_arg(batch_size, "batch_size", 1, 100_000)
    total = 0
    while True:
        removed = await db.execute_rows(STATEMENTS.purge_expired, batch_size=batch_size)
        total += removed
        if removed < batch_size:
            return total


async def search_memories(
    db: Executor,
    user_id: UUID | str,
    query: str,
    *,
    limit: int = 10,
    memory_types: list[MemoryType | str] | tuple[MemoryType | str, ...] | None = None,
) -> list[MemoryHit]:
    """The user's unexpired entries most relevant to `query`, best first (at most `limit`).

    Words of the query match any word of the entry's key or value that starts with them,
    accents and case ignored (on PostgreSQL also Portuguese stems and near spellings). The
    score is relevance x importance x recency decay by memory type: see the README. A query
    without any letter or digit finds nothing.
    """
    uid = uuid_arg(user_id, "user_id")
    search = validate(
        _Search,
        query=query,
        limit=limit,
        memory_types=None if memory_types is None else list(memory_types),
    )
    terms = list(dict.fromkeys(w.lower() for w in _WORD.findall(search.query)))[:MAX_TERMS]
    if not terms:
        return []
    types = None if search.memory_types is None else sorted({t.value for t in search.memory_types})
    cache = cache_of(db)
    cache_key = ("search", uid, tuple(terms), search.limit, None if types is None else tuple(types))
    if cache is not None:
        cached = cache.get(cache_key)
        if cached is not cache.MISSING:
            hits: list[MemoryHit] = cached
            return hits
        generation = cache.generation(uid)
    rows = await db.fetch_many(
        ScoredMemoryEntry,
        STATEMENTS.search_memories,
        user_id=uid,
        terms=Json(terms),
        memory_types=None if types is None else Json(types),
        limit=search.limit,
    )
    hits = [MemoryHit(entry=MemoryEntry(**_fields(row)), score=row.score) for row in rows]
    if cache is not None:
        soonest = min((h.entry.expires_at for h in hits if h.entry.expires_at), default=None)
        ttl = None if soonest is None else (soonest - datetime.now(UTC)).total_seconds()
        cache.put(cache_key, uid, hits, generation, ttl)
    return hits


def _fields(row: ScoredMemoryEntry) -> dict[str, Any]:
    return {name: getattr(row, name) for name in MemoryEntry.model_fields}
