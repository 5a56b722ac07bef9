"""`Database`: the backend a URL names, the transaction open in the current task, and the
in-process memory cache.

Inside `async with db.transaction() as tx:`, statements run through `db` itself also join that
transaction (the open transaction is kept in a context variable, per task), so code that was
handed `db` cannot deadlock against, or slip outside of, the transaction around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel

from stratus_sql.backends.base import Actor, BaseExecutor, Executor, Json
from stratus_sql.backends.postgres import PostgresBackend, primary_only
from stratus_sql.backends.sqlite import SqliteBackend
from stratus_sql.cache import CacheStats, MemoryCache
from stratus_sql.config import Settings
from stratus_sql.errors import CommitUnknown, ConfigError, StratusError, UsageError
from stratus_sql.migrations import pending_migrations
from stratus_sql.observability import StatementStats
from stratus_sql.retry import backoff, may_retry
from stratus_sql.sqlfiles import NamedStatement, load_queries
from stratus_sql.transaction import Transaction

__all__ = ["Database", "Health", "connect"]

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")

# Database id -> the innermost transaction level open in this context for that database.
_open_transactions: ContextVar[dict[int, Transaction]] = ContextVar("stratus_transactions")

_FLUSH_SECONDS = 1.0
_MEMORY_CHANNEL = "stratus_memory"


class Database:
    """A connected database: an executor, a transaction factory, and `close()`."""

    def __init__(self, backend: PostgresBackend | SqliteBackend) -> None:
        self._backend = backend
        self._closed = False
        settings = backend.settings
        self._cache = (
            MemoryCache(settings.memory_cache_size, settings.memory_cache_ttl)
            if settings.memory_cache_size > 0
            else None
        )
        self._flusher: asyncio.Task[None] | None = None

    @property
    def dialect(self) -> str:
        """`postgres` or `sqlite`."""
        return self._backend.dialect

    @property
    def settings(self) -> Settings:
        return self._backend.settings

    @property
    def memory_cache(self) -> MemoryCache | None:
        """The memory cache, unless disabled or a transaction is open in this task."""
        if self._closed:
            raise UsageError("the database is closed")
        if self._cache is None or self._open_transaction() is not None:
            return None
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        return self._cache

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open in this task (statements through `db` join it)."""
        return self._open_transaction() is not None

    def memory_written(self, user_id: UUID) -> None:
        """A user's memories changed: drop their cached reads."""
        if self._cache is not None:
            self._cache.invalidate(user_id)

    def stats(self) -> dict[str, StatementStats]:
        """Per statement name: calls, errors, total and p95 duration in milliseconds."""
        observer = self._backend._observer
        return {} if observer is None else observer.stats()

    async def health(self) -> Health:
        """Whether the database answers (and how fast), its version, the pool, and the
        migrations not applied yet. Never raises for an unreachable database."""
        size, idle = self._backend.pool_sizes()
        started = time.perf_counter()
        try:
            version = str(await self._backend.fetch_scalar(_HEALTH.server_version))
        except StratusError as exc:
            return Health(False, None, None, size, idle, [], str(exc))
        latency = round((time.perf_counter() - started) * 1000, 3)
        try:
            pending = await asyncio.to_thread(pending_migrations, self.settings.database_url)
        except StratusError as exc:
            return Health(True, latency, version, size, idle, [], str(exc))
        return Health(True, latency, version, size, idle, pending, None)

    def cache_stats(self) -> CacheStats:
        """Hits, misses, invalidations and size of the memory cache (all 0 when disabled)."""
        return CacheStats(0, 0, 0, 0) if self._cache is None else self._cache.stats()

    def _open_transaction(self) -> Transaction | None:
        level = _open_transactions.get({}).get(id(self))
        return level if level is not None and level.active else None

    def _executor(self) -> BaseExecutor | Transaction:
        if self._closed:
            raise UsageError("the database is closed")
        return self._open_transaction() or self._backend

    async def fetch_one(self, record: type[R], named: NamedStatement, /, **params: Any) -> R | None:
        return await self._executor().fetch_one(record, named, **params)

    async def fetch_many(self, record: type[R], named: NamedStatement, /, **params: Any) -> list[R]:
        return await self._executor().fetch_many(record, named, **params)

    async def fetch_scalar(self, named: NamedStatement, /, **params: Any) -> Any:
        return await self._executor().fetch_scalar(named, **params)

    async def execute(self, named: NamedStatement, /, **params: Any) -> None:
        await self._executor().execute(named, **params)

    async def execute_rows(self, named: NamedStatement, /, **params: Any) -> int:
        return await self._executor().execute_rows(named, **params)

    async def copy(self, named: NamedStatement, rows: Sequence[Sequence[Any]], /) -> int:
        return await self._executor().copy(named, rows)

    @asynccontextmanager
    async def transaction(
        self, actor: Actor | None = None, *, scoped: bool = False
    ) -> AsyncIterator[Executor]:
        """Open a transaction, or a savepoint inside the one already open in this task.

        It commits when the block exits normally and rolls back when it raises. `actor` is
        who makes the changes, recorded by the audit trail; only the outermost level takes
        it. `scoped=True` (PostgreSQL) runs the transaction under row-level security: only
        the actor's own rows are visible and writable (an admin actor may read all).
        """
        if actor is not None and not isinstance(actor, Actor):
            raise UsageError(f"actor must be an Actor, not {type(actor).__name__}")
        current = self._executor()
        if isinstance(current, Transaction):
            if scoped:
                raise UsageError("only the outermost transaction can be scoped")
            async with current.transaction(actor) as tx:
                yield tx
            return
        written: set[UUID] = set()
        owner = asyncio.current_task()
        async with (
            self._backend.transaction(actor, scoped=scoped) as inner,
            Transaction.level(self, inner, written, owner) as tx,
        ):
            yield tx
        for user_id in written:  # committed: readers may have cached what it replaced
            self.memory_written(user_id)

    @contextlib.contextmanager
    def primary(self) -> Iterator[None]:
        """Within the block, reads in this task go to the primary even when a replica is
        configured (DATABASE_REPLICA_URL): read your own writes. A no-op without replica."""
        token = primary_only.set(True)
        try:
            yield
        finally:
            primary_only.reset(token)

    async def run_transaction(
        self,
        fn: Callable[[Executor], Awaitable[T]],
        *,
        actor: Actor | None = None,
        scoped: bool = False,
    ) -> T:
        """Run `await fn(tx)` in a transaction and return its result, rerunning the whole
        function (in a fresh transaction) on a transient error: a serialization failure, a
        deadlock, a lost connection, a busy SQLite file. Up to DB_RETRY_ATTEMPTS reruns,
        after a jittered backoff; `fn` must therefore do nothing outside the database that
        it cannot repeat. A connection lost while COMMIT was in flight raises CommitUnknown,
        never retried. Statements inside `db.transaction()` are never retried one by one.
        """
        if self._open_transaction() is not None:
            raise UsageError(
                "run_transaction cannot run inside an open transaction: a retry would rerun "
                "only part of the work"
            )
        name = f"run_transaction:{getattr(fn, '__qualname__', type(fn).__name__)}"
        attempt = 0
        while True:
            try:
                async with self.transaction(actor, scoped=scoped) as tx:
                    return await fn(tx)
            except CommitUnknown:
                raise
            except StratusError as exc:
                # Everything the failed attempt wrote was rolled back with its transaction.
                if attempt >= self.settings.retry_attempts or not may_retry(exc, writes=False):
                    raise
            attempt += 1
            if self._backend._observer is not None:
                self._backend._observer.retried(name)
            await asyncio.sleep(backoff(attempt))

    @asynccontextmanager
    async def _entered(self, level: Transaction) -> AsyncIterator[Transaction]:
        """Make `level` the current transaction of this context while the block runs."""
        token = _open_transactions.set({**_open_transactions.get({}), id(self): level})
        try:
            yield level
        finally:
            level.active = False
            _open_transactions.reset(token)

    async def _start(self) -> None:
        if self._cache is not None and isinstance(self._backend, PostgresBackend):
            await self._backend.listen(_MEMORY_CHANNEL, self._on_memory_notice, self._cache)

    def _on_memory_notice(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.memory_written(UUID(payload))

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            with contextlib.suppress(StratusError):  # kept, and tried again next second
                await self._flush_accesses()

    async def _flush_accesses(self) -> None:
        """Write the accesses served from the cache since the last flush."""
        if self._cache is None:
            return
        batch = self._cache.take_accesses()
        if not batch:
            return
        try:
            await self._backend.execute_rows(_memory_statements().count_accesses, batch=Json(batch))
        except CommitUnknown:
            raise  # it may have been counted: dropping the batch undercounts, never doubles
        except StratusError:
            self._cache.return_accesses(batch)  # not applied: counted at the next flush
            raise

    async def close(self) -> None:
        """Write pending accesses and close every connection; further calls raise UsageError.
        Closing twice is harmless."""
        if self._closed:
            return
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        try:
            await self._flush_accesses()
        finally:
            self._closed = True
            await self._backend.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


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


_HEALTH = load_queries("health")


def _memory_statements() -> Any:
    return load_queries("memory")


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
    backend_cls = PostgresBackend if settings.backend == "postgres" else SqliteBackend
    db = Database(await backend_cls.open(settings))
    try:
        await db._start()
    except BaseException:
        await db.close()
        raise
    return db
