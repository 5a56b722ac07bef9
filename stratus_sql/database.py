"""`connect()`: the engine's Database over the driver a URL names, with the features of
Stratus.IA attached: the memory cache, row-level security scoped to an actor, health.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from uuid import UUID

from stratus_sql.cache import (
    CacheStats,
    MemoryCache,
    attach_cache,
    cache_of,
    cache_stats,
    memory_written,
)
from stratus_sql.config import Settings
from stratus_sql.drivers import open_driver
from stratus_sql.drivers.interface import Connection
from stratus_sql.engine import database as engine
from stratus_sql.engine.executor import Actor
from stratus_sql.errors import ConfigError, StratusError
from stratus_sql.migrations import pending_migrations
from stratus_sql.sqlfiles import load_queries

__all__ = ["Database", "Health", "connect"]

_HEALTH = load_queries("health")
_SESSION = load_queries("session")
_SCOPED_ROLE = "stratus_scoped"  # created by migration 0006


class Database(engine.Database):
    """A connected database: an executor, a transaction factory, and `close()`."""

    @property
    def memory_cache(self) -> MemoryCache | None:
        """The memory cache, unless disabled or a transaction is open in this task."""
        return cache_of(self)

    def memory_written(self, user_id: UUID) -> None:
        """A user's memories changed: drop their cached reads."""
        memory_written(self, user_id)

    def cache_stats(self) -> CacheStats:
        """Hits, misses, invalidations and size of the memory cache (all 0 when disabled)."""
        return cache_stats(self)

    async def health(self) -> Health:
        """Whether the database answers (and how fast), its version, the pool, and the
        migrations not applied yet. Never raises for an unreachable database."""
        size, idle = self.pool_sizes()
        started = time.perf_counter()
        try:
            version = str(await self.fetch_scalar(_HEALTH.server_version))
        except StratusError as exc:
            return Health(False, None, None, size, idle, [], str(exc))
        latency = round((time.perf_counter() - started) * 1000, 3)
        try:
            pending = await asyncio.to_thread(pending_migrations, self.settings.database_url)
        except StratusError as exc:
            return Health(True, latency, version, size, idle, [], str(exc))
        return Health(True, latency, version, size, idle, pending, None)

    async def _scope(self, conn: Connection, actor: Actor | None) -> None:
        """Run the rest of the transaction as stratus_scoped, under row-level security. The
        actor's role is read first, while still privileged: an admin may read every row."""
        if actor is not None and actor.user_id is not None:
            stmt = _SESSION.actor_role.for_dialect(self.dialect)
            if await conn.fetch_value(stmt, {"user_id": actor.user_id}) == "admin":
                await conn.set_local({"stratus.actor_is_admin": "on"})
        await conn.scope(_SCOPED_ROLE)


@dataclass(frozen=True, slots=True)
class Health:
    """What `Database.health()` found; `healthy` when reachable and fully migrated."""

    reachable: bool
    latency_ms: float | None
    server_version: str | None
    pool_size: int
    pool_idle: int
    pending_migrations: list[str]
    error: str | None

    @property
    def healthy(self) -> bool:
        return self.reachable and not self.pending_migrations and self.error is None


async def connect(url: str | None = None, *, settings: Settings | None = None) -> Database:
    """Connect to `url`, else DATABASE_URL, else the embedded SQLite file ./stratus.db.

    `settings` overrides the environment for everything but the URL given here.
    """
    if settings is None:
        settings = Settings.load(database_url=url)
    elif url is not None:
        fields = {**settings.model_dump(), "database_url": url}
        settings = Settings.load(environ={}, env_file=None, **fields)
    if settings.backend == "sqlite" and (settings.replica_url or settings.listen_url):
        raise ConfigError(
            "DATABASE_REPLICA_URL and DATABASE_LISTEN_URL apply only to a PostgreSQL DATABASE_URL"
        )
    db = Database(await open_driver(settings))
    try:
        if settings.memory_cache_size > 0:
            await attach_cache(db, settings.memory_cache_size, settings.memory_cache_ttl)
    except BaseException:
        await db.close()
        raise
    return db
