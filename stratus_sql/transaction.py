"""One level of an open transaction (the outermost, or a savepoint), as callers hold it.

Three rules hold on both backends alike:
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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from pydantic import BaseModel

from stratus_sql.backends.base import Actor, BaseExecutor, Executor
from stratus_sql.cache import MemoryCache
from stratus_sql.errors import UsageError
from stratus_sql.statements import NamedStatement

if TYPE_CHECKING:
    from stratus_sql.database import Database

__all__ = ["DOOMED", "Transaction"]

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")

DOOMED = (
    "a statement failed inside this transaction, so it was rolled back; let the error "
    "leave the transaction block, or run the statement that may fail in a nested "
    "transaction() and catch the error outside that block"
)


class Transaction:
    """The executor of one transaction level; see the module docstring for its rules."""

    def __init__(
        self,
        db: Database,
        inner: BaseExecutor,
        written: set[UUID],
        owner: asyncio.Task[Any] | None,
    ) -> None:
        self._db = db
        self._inner = inner
        self._written = written  # users whose memories changed, invalidated at commit
        self._owner = owner
        self.active = True
        self.doomed = False

    @property
    def dialect(self) -> str:
        return self._inner.dialect

    @property
    def memory_cache(self) -> MemoryCache | None:
        return None  # reads inside a transaction must see its own writes

    def memory_written(self, user_id: UUID) -> None:
        self._written.add(user_id)
        self._db.memory_written(user_id)

    async def fetch_one(self, record: type[R], named: NamedStatement, /, **params: Any) -> R | None:
        return await self._run(lambda e: e.fetch_one(record, named, **params))

    async def fetch_many(self, record: type[R], named: NamedStatement, /, **params: Any) -> list[R]:
        return await self._run(lambda e: e.fetch_many(record, named, **params))

    async def fetch_scalar(self, named: NamedStatement, /, **params: Any) -> Any:
        return await self._run(lambda e: e.fetch_scalar(named, **params))

    async def execute(self, named: NamedStatement, /, **params: Any) -> None:
        await self._run(lambda e: e.execute(named, **params))

    async def execute_rows(self, named: NamedStatement, /, **params: Any) -> int:
        return await self._run(lambda e: e.execute_rows(named, **params))

    async def copy(self, named: NamedStatement, rows: Sequence[Sequence[Any]], /) -> int:
        return await self._run(lambda e: e.copy(named, rows))

    def transaction(self, actor: Actor | None = None) -> AbstractAsyncContextManager[Executor]:
        """A savepoint inside this transaction."""
        return self._savepoint(actor)

    @asynccontextmanager
    async def _savepoint(self, actor: Actor | None) -> AsyncIterator[Transaction]:
        async with (
            self._check().transaction(actor) as inner,
            self.level(self._db, inner, self._written, self._owner) as level,
        ):
            yield level

    @staticmethod
    @asynccontextmanager
    async def level(
        db: Database, inner: BaseExecutor, written: set[UUID], owner: asyncio.Task[Any] | None
    ) -> AsyncIterator[Transaction]:
        """A new level, current in this task while the block runs; raising UsageError at the
        end when the level is doomed makes the backend roll it back."""
        level = Transaction(db, inner, written, owner)
        async with db._entered(level):
            yield level
            if level.doomed:
                raise UsageError(DOOMED)

    def _check(self) -> BaseExecutor:
        if not self.active:
            raise UsageError("this transaction has ended; its handle can no longer be used")
        if asyncio.current_task() is not self._owner:
            raise UsageError(
                "this transaction belongs to another task: run its statements one after "
                "another in the task that opened it"
            )
        if self.doomed:
            raise UsageError(DOOMED)
        return self._inner

    async def _run(self, call: Callable[[BaseExecutor], Awaitable[T]]) -> T:
        inner = self._check()
        try:
            return await call(inner)
        except UsageError:
            raise
        except BaseException:
            # Any statement that did not finish (an error, a timeout, a cancellation) may
            # have aborted the transaction on the server: it can only roll back now.
            self.doomed = True
            raise
