"""`Database`: statements over a driver's connections, and the transaction open in the
current task.

Inside `async with db.transaction() as tx:`, statements run through `db` itself also join that
transaction (the open transaction is kept in a context variable, per task), so code that was
handed `db` cannot deadlock against, or slip outside of, the transaction around it. Outside
a transaction each statement takes a connection from the driver, and a transient failure is
retried (a write only when it cannot have been applied).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Self, TypeVar

from stratus_sql.config import Settings
from stratus_sql.drivers.interface import Connection, Driver, prefer_primary
from stratus_sql.engine.executor import Actor, Executor, Op, Runner
from stratus_sql.engine.transaction import DOOMED, Transaction, atomic
from stratus_sql.errors import (
    CommitUnknown,
    Conflict,
    DatabaseUnavailable,
    StratusError,
    UsageError,
)
from stratus_sql.observability import Observer, StatementStats, current_trace_id
from stratus_sql.retry import may_retry, retrying
from stratus_sql.statements import Kind, NamedStatement, Statement

__all__ = ["Database"]

T = TypeVar("T")

# Database id -> the innermost transaction level open in this context for that database.
_open_transactions: ContextVar[dict[int, Transaction]] = ContextVar("stratus_transactions")
_NONE_OPEN: dict[int, Transaction] = {}
_REPLICA_KINDS = (Kind.ONE, Kind.MANY)


def _cut_off(stmt: Statement, exc: StratusError, writes: bool) -> StratusError:
    """The error a statement outside a transaction raises: CommitUnknown for a write that
    was cut off after it was sent (it may have been applied), else its own."""
    if not (writes and exc.in_flight):
        return exc
    unknown = CommitUnknown(
        f"{stmt.name}: the statement was cut off after it was sent (the connection was "
        "lost, or it ran past DB_COMMAND_TIMEOUT); it may or may not have been applied"
    )
    unknown.__cause__ = exc
    return unknown


class Database(Runner):
    """A connected database: an executor, a transaction factory, and `close()`."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._observer = Observer(driver.dialect, driver.settings.slow_query_ms)
        self._replica = driver.capabilities.replica and driver.settings.replica_url is not None
        self._closed = False
        self._before_close: list[Callable[[], Awaitable[None]]] = []
        # Features attached by the layers above (the memory cache), by their type.
        self.attachments: dict[type, Any] = {}

    @property
    def settings(self) -> Settings:
        return self._driver.settings

    @property
    def database(self) -> Database:
        return self

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open in this task (statements through `db` join it)."""
        return self._open_transaction() is not None

    def on_commit(self, hook: Callable[[], None]) -> None:
        level = self._open_transaction()
        if level is None:
            hook()
        else:
            level.on_commit(hook)

    def before_close(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await `hook()` when the database closes, before its connections are."""
        self._before_close.append(hook)

    async def listen(
        self, channel: str, on_notice: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> bool:
        """Notifications on `channel` (see `Driver.listen`); False when the driver has none."""
        if not self._driver.capabilities.listen:
            return False
        await self._driver.listen(channel, on_notice, on_state)
        return True

    def stats(self) -> dict[str, StatementStats]:
        """Per statement name: calls, errors, total and p95 duration in milliseconds."""
        return self._observer.stats()

    def pool_sizes(self) -> tuple[int, int]:
        """(connections open, of which idle)."""
        return self._driver.pool_sizes()

    async def describe(self, named: NamedStatement) -> list[str]:
        """Prepare the statement without running it; the names of its result columns."""
        return await self._driver.describe(named.for_dialect(self.dialect))

    def _open_transaction(self) -> Transaction | None:
        level = _open_transactions.get(_NONE_OPEN).get(id(self))
        return level if level is not None and level.active else None

    async def _run(self, stmt: Statement, op: Op[T]) -> T:
        level = _open_transactions.get(_NONE_OPEN).get(id(self))
        if level is not None and level.active:
            return await level._run(stmt, op)
        if self._closed:
            raise UsageError("the database is closed")
        writes = not stmt.readonly
        # Only rows may come from a replica: a scalar (a sequence's value, a transaction
        # status) must be the primary's.
        replica = self._replica and not writes and stmt.kind in _REPLICA_KINDS
        try:  # the first try, outside the retry loop: it costs nothing when it succeeds
            async with self._driver.connection(write=writes, replica=replica) as conn:
                return await op(conn)
        except StratusError as exc:
            failed = _cut_off(stmt, exc, writes)
        if replica and isinstance(failed, DatabaseUnavailable):
            # A replica that failed is passed over for a while: the read goes to the primary
            # at once, whatever the retry budget.
            try:
                return await self._attempt(stmt, op, writes, replica=False)
            except StratusError as exc:
                failed = exc
        return await retrying(
            lambda: self._attempt(stmt, op, writes, replica=replica),
            retries=self.settings.retry_attempts,
            retry_if=lambda exc: may_retry(exc, writes=writes),
            on_retry=lambda: self._observer.retried(stmt.name),
            failed=failed,
        )

    async def _attempt(self, stmt: Statement, op: Op[T], writes: bool, *, replica: bool) -> T:
        """Another try of a statement outside a transaction, on a connection of its own."""
        try:
            async with self._driver.connection(write=writes, replica=replica) as conn:
                return await op(conn)
        except StratusError as exc:
            error = _cut_off(stmt, exc, writes)
            if error is exc:
                raise
            raise error from exc

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
        if self._closed:
            raise UsageError("the database is closed")
        current = self._open_transaction()
        if current is not None:
            if scoped:
                raise UsageError("only the outermost transaction can be scoped")
            async with current.transaction(actor) as tx:
                yield tx
            return
        if scoped and not self._driver.capabilities.roles:
            raise UsageError("scoped transactions (row-level security) need PostgreSQL")
        committed: list[Callable[[], None]] = []
        async with (
            self._driver.connection(write=True) as conn,
            atomic(conn, begin=lambda: self._begin(conn)),
        ):
            settings = {} if actor is None else actor.settings()
            trace_id = current_trace_id()
            if trace_id is not None:  # shows in pg_stat_activity while it runs
                settings["application_name"] = f"stratus:{trace_id}"
            if settings:
                await conn.set_local(settings)
            if scoped:
                await self._scope(conn, actor)
            level = Transaction(self, conn, asyncio.current_task(), committed)
            async with self._entered(level):
                yield level
                if level.doomed:
                    raise UsageError(DOOMED)
        for hook in committed:
            hook()

    async def _begin(self, conn: Connection) -> None:
        """BEGIN; one refused because another process holds the write lock (SQLite) has
        done nothing yet and is tried again."""
        await retrying(
            conn.begin,
            retries=self.settings.retry_attempts,
            retry_if=lambda exc: isinstance(exc, Conflict) and exc.retryable,
            on_retry=lambda: self._observer.retried(self._driver.begin_statement),
        )

    async def _scope(self, conn: Connection, actor: Actor | None) -> None:
        """Run the rest of the transaction under row-level security (see `transaction`)."""
        raise UsageError("this database has no row-level security to scope to")

    @contextlib.contextmanager
    def primary(self) -> Iterator[None]:
        """Within the block, reads in this task go to the primary even when a replica is
        configured (DATABASE_REPLICA_URL): read your own writes. A no-op without replica."""
        token = prefer_primary.set(True)
        try:
            yield
        finally:
            prefer_primary.reset(token)

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

        async def attempt() -> T:
            # Everything a failed attempt wrote was rolled back with its transaction.
            async with self.transaction(actor, scoped=scoped) as tx:
                return await fn(tx)

        return await retrying(
            attempt,
            retries=self.settings.retry_attempts,
            retry_if=lambda exc: (
                not isinstance(exc, CommitUnknown) and may_retry(exc, writes=False)
            ),
            on_retry=lambda: self._observer.retried(name),
        )

    @asynccontextmanager
    async def _entered(self, level: Transaction) -> AsyncIterator[Transaction]:
        """Make `level` the current transaction of this context while the block runs."""
        token = _open_transactions.set({**_open_transactions.get(_NONE_OPEN), id(self): level})
        try:
            yield level
        finally:
            level.active = False
            _open_transactions.reset(token)

    async def close(self) -> None:
        """Run the close hooks and close every connection; further calls raise UsageError.
        Closing twice is harmless."""
        if self._closed:
            return
        try:
            for hook in self._before_close:
                await hook()
        finally:
            self._closed = True
            await self._driver.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
