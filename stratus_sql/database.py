"""`Database`: the backend a URL names, and the transaction open in the current task.

Inside `async with db.transaction() as tx:`, statements run through `db` itself also join that
transaction (the open transaction is kept in a context variable, per task), so code that was
handed `db` cannot deadlock against, or slip outside of, the transaction around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel

from stratus_sql.backends.base import Actor, Executor
from stratus_sql.backends.postgres import PostgresBackend
from stratus_sql.backends.sqlite import SqliteBackend
from stratus_sql.config import Settings
from stratus_sql.errors import UsageError
from stratus_sql.sqlfiles import NamedStatement

__all__ = ["Database", "connect"]

R = TypeVar("R", bound=BaseModel)

# Database id -> the executor of the transaction open in this task for that database.
_open_transactions: ContextVar[dict[int, Executor]] = ContextVar("stratus_transactions")


class Database:
    """A connected database: an executor, a transaction factory, and `close()`."""

    def __init__(self, backend: PostgresBackend | SqliteBackend) -> None:
        self._backend = backend
        self._closed = False

    @property
    def dialect(self) -> str:
        """`postgres` or `sqlite`."""
        return self._backend.dialect

    @property
    def settings(self) -> Settings:
        return self._backend.settings

    def _executor(self) -> Executor:
        if self._closed:
            raise UsageError("the database is closed")
        return _open_transactions.get({}).get(id(self), self._backend)

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

    @asynccontextmanager
    async def transaction(self, actor: Actor | None = None) -> AsyncIterator[Executor]:
        """Open a transaction, or a savepoint inside the one already open in this task.

        It commits when the block exits normally and rolls back when it raises. `actor` is
        who makes the changes, recorded by the audit trail; only the outermost level takes it.
        """
        if actor is not None and not isinstance(actor, Actor):
            raise UsageError(f"actor must be an Actor, not {type(actor).__name__}")
        current = self._executor()
        opened = _open_transactions.get({})
        async with current.transaction(actor) as tx:
            token = _open_transactions.set({**opened, id(self): tx})
            try:
                yield tx
            finally:
                _open_transactions.reset(token)

    async def close(self) -> None:
        """Close every connection; further calls raise UsageError. Closing twice is harmless."""
        if not self._closed:
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


async def connect(url: str | None = None, *, settings: Settings | None = None) -> Database:
    """Connect to `url`, else DATABASE_URL, else the embedded SQLite file ./stratus.db.

    `settings` overrides the environment for everything but the URL given here.
    """
    if settings is None:
        settings = Settings.load(database_url=url)
    elif url is not None:
        fields = {**settings.model_dump(), "database_url": url}
        settings = Settings.load(environ={}, env_file=None, **fields)
    backend_cls = PostgresBackend if settings.backend == "postgres" else SqliteBackend
    return Database(await backend_cls.open(settings))
