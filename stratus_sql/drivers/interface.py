"""The whole contract between the engine and a database driver.

A `Driver` owns the connections to one database (a pool, a writer and readers, ...) and hands
out one `Connection` at a time. A connection runs compiled statements (`sqlfiles.Statement`)
one after another and knows how to begin, commit and roll back. Every error a driver raises is
already a `StratusError`, marked `retryable` / `in_flight` where it applies (see `retry.py`),
with `sqlstate` set where the database has one. Drivers know no records, no retries, no
actors and no query modules: the engine above them does.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from stratus_sql.config import Settings
from stratus_sql.errors import UsageError
from stratus_sql.statements import Statement

__all__ = ["Capabilities", "Connection", "Converter", "Driver", "Json", "Row", "prefer_primary"]

Row = Sequence[Any]
Converter = Callable[[Any], Any]

# Set by `Database.primary()`: reads in this context go to the primary, never a replica.
prefer_primary: ContextVar[bool] = ContextVar("stratus_prefer_primary", default=False)


@dataclass(frozen=True, slots=True)
class Json:
    """A parameter to store as JSON, whatever its Python type (a str becomes a JSON string)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a driver offers beyond running statements."""

    listen: bool = False  # `Driver.listen`: NOTIFY payloads to a callback
    replica: bool = False  # read-only connections may come from a replica
    roles: bool = False  # `Connection.scope`: row-level security for the transaction


class Connection(abc.ABC):
    """One connection, held by one caller at a time; statements run one after another."""

    @abc.abstractmethod
    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        """Every row of a statement."""

    @abc.abstractmethod
    async def fetch_value(self, stmt: Statement, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""

    @abc.abstractmethod
    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        """Run a statement; the number of rows it changed (0 when it does not say)."""

    @abc.abstractmethod
    async def copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int:
        """Bulk-load `rows` (values in `stmt.params` order), all or nothing; how many."""

    @abc.abstractmethod
    async def begin(self) -> None:
        """Open a transaction (a write transaction: it may take the database's write lock)."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Commit the open transaction; a connection lost meanwhile is `in_flight`."""

    @abc.abstractmethod
    async def rollback(self) -> None:
        """Roll back the open transaction; nothing when the database already did."""

    @abc.abstractmethod
    async def savepoint(self, name: str) -> None:
        """Open a savepoint `name` inside the open transaction."""

    @abc.abstractmethod
    async def release(self, name: str) -> None:
        """Keep what was done since the savepoint `name`, and forget the savepoint."""

    @abc.abstractmethod
    async def rollback_to(self, name: str) -> None:
        """Roll back to the savepoint and release it."""

    @abc.abstractmethod
    async def set_local(self, settings: Mapping[str, str]) -> None:
        """Settings for the rest of the open transaction. `stratus.*` names are read by the
        schema (audit triggers, row-level security); other names are server settings, which
        a database without them ignores."""

    async def scope(self, role: str) -> None:
        """Run the rest of the transaction as `role`, under row-level security."""
        raise UsageError("scoped transactions (row-level security) need PostgreSQL")

    @abc.abstractmethod
    def discard(self) -> None:
        """Close the connection at once: it must not be used or handed out again."""


class Driver(abc.ABC):
    """The connections to one database."""

    dialect: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    begin_statement: ClassVar[str] = "BEGIN"  # what `Connection.begin` sends, for statistics
    settings: Settings

    @classmethod
    @abc.abstractmethod
    async def open(cls, settings: Settings) -> Driver:
        """Connect to `settings.database_url`; DatabaseUnavailable when it cannot."""

    @abc.abstractmethod
    def connection(
        self, *, write: bool, replica: bool = False
    ) -> AbstractAsyncContextManager[Connection]:
        """A connection for one statement or one transaction, given back when the block
        ends (discarded when it raised DatabaseUnavailable). `write=False` promises only
        reads outside a transaction, so a reader may serve it; `replica=True` also allows a
        replica, which may lag behind (the engine asks for it for `:one` / `:many` reads)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection; a statement still running past the command timeout is
        cut off."""

    @abc.abstractmethod
    async def describe(self, stmt: Statement) -> list[str]:
        """Prepare `stmt` without running it; the names of its result columns."""

    @abc.abstractmethod
    def pool_sizes(self) -> tuple[int, int]:
        """(connections open, of which idle)."""

    def converter(self, tp: Any) -> Converter | None:
        """How a non-null column becomes what a record field of type `tp` validates; None
        when the driver's value is already right."""
        return None

    async def listen(
        self,
        channel: str,
        on_notice: Callable[[str], None],
        on_state: Callable[[bool], None],
    ) -> None:
        """Call `on_notice(payload)` for every notification on `channel`, and
        `on_state(False)` / `on_state(True)` when notices may be missed / arrive again."""
        raise UsageError(f"{self.dialect} has no notifications")
