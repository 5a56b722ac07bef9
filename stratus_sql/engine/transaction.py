"""One level of an open transaction (the outermost, or a savepoint), as callers hold it.

Three rules hold on every driver alike:
- A transaction belongs to the task that opened it. Its statements run there, one after
  another; a statement from another task (one created inside the block, or gathered)
  raises UsageError instead of interleaving on the transaction's single connection.
- Once a statement fails, its level is doomed: PostgreSQL refuses everything after an error
  until a rollback, so the level rolls back and `UsageError` says so, even when the caller
  caught the error and let the block end normally. To go on after an expected failure,
  run the statement in a nested `transaction()` (a savepoint) and catch the error outside it.
- When the block ends, the handle is closed; using it afterwards raises UsageError.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from stratus_sql.drivers.interface import Connection
from stratus_sql.engine.executor import Actor, Executor, Op, Runner
from stratus_sql.errors import CommitUnknown, QueryTimeout, StratusError, UsageError
from stratus_sql.statements import Statement

if TYPE_CHECKING:
    from stratus_sql.engine.database import Database

__all__ = ["DOOMED", "Transaction", "atomic"]

T = TypeVar("T")

DOOMED = (
    "a statement failed inside this transaction, so it was rolled back; let the error "
    "leave the transaction block, or run the statement that may fail in a nested "
    "transaction() and catch the error outside that block"
)

_savepoints = itertools.count(1)


class Transaction(Runner):
    """The executor of one transaction level; see the module docstring for its rules."""

    def __init__(
        self,
        db: Database,
        conn: Connection,
        owner: asyncio.Task[Any] | None,
        committed: list[Callable[[], None]],
    ) -> None:
        self._db = db
        self._driver = db._driver
        self._observer = db._observer
        self._conn = conn
        self._owner = owner
        self._committed = committed  # hooks run after the outermost COMMIT
        self.active = True
        self.doomed = False

    @property
    def database(self) -> Database:
        return self._db

    @property
    def in_transaction(self) -> bool:
        return True

    def on_commit(self, hook: Callable[[], None]) -> None:
        self._committed.append(hook)

    async def _run(self, stmt: Statement, op: Op[T]) -> T:
        conn = self._check()
        try:
            return await op(conn)
        except UsageError:
            raise
        except BaseException:
            # Any statement that did not finish (an error, a timeout, a cancellation) may
            # have aborted the transaction on the server: it can only roll back now.
            self.doomed = True
            raise

    def transaction(self, actor: Actor | None = None) -> AbstractAsyncContextManager[Executor]:
        """A savepoint inside this transaction."""
        if actor is not None:
            raise UsageError("an actor can only be set on the outermost transaction")
        return self._savepoint()

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[Transaction]:
        conn = self._check()
        name = f"sp_{next(_savepoints)}"
        async with atomic(conn, savepoint=name):
            level = Transaction(self._db, conn, self._owner, self._committed)
            async with self._db._entered(level):
                yield level
                if level.doomed:
                    raise UsageError(DOOMED)

    def _check(self) -> Connection:
        if not self.active:
            raise UsageError("this transaction has ended; its handle can no longer be used")
        if asyncio.current_task() is not self._owner:
            raise UsageError(
                "this transaction belongs to another task: run its statements one after "
                "another in the task that opened it"
            )
        if self.doomed:
            raise UsageError(DOOMED)
        return self._conn


@asynccontextmanager
async def atomic(
    conn: Connection,
    *,
    savepoint: str | None = None,
    begin: Callable[[], Any] | None = None,
) -> AsyncIterator[None]:
    """Run the block in a transaction (at `savepoint` inside one): commit or roll back.

    `begin` opens the outermost transaction (the caller may retry a busy BEGIN there). A
    connection lost or timed out while the outermost COMMIT was in flight raises
    CommitUnknown: the server may have committed before the link went down. A connection
    that cannot even roll back is discarded, and the block's own error is the one raised.
    """
    if savepoint is not None:
        await conn.savepoint(savepoint)
    else:
        await (begin() if begin is not None else conn.begin())
    try:
        yield
        if savepoint is not None:
            await conn.release(savepoint)
            return
        try:
            await conn.commit()
        except StratusError as exc:
            if exc.in_flight or isinstance(exc, QueryTimeout):
                raise CommitUnknown(
                    "the connection was lost or timed out while COMMIT was in flight: the "
                    "transaction may or may not have been committed"
                ) from exc
            raise
    except BaseException:
        try:
            if savepoint is None:
                await conn.rollback()
            else:
                await conn.rollback_to(savepoint)
        except (StratusError, OSError):
            conn.discard()
        raise
