"""The executor query functions run statements on, implemented once.

`Runner` checks a statement's kind and parameters, times it, runs it on a driver
`Connection` and turns its rows into records. Where the connection comes from is the only
thing its two subclasses decide: `Database` takes one from the driver for each statement
(retrying transient failures), `Transaction` holds the one its transaction runs on.
"""

from __future__ import annotations

import abc
import ipaddress
import types
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
)
from uuid import UUID

from pydantic import BaseModel

from stratus_sql.drivers.interface import Connection, Converter, Driver, Row
from stratus_sql.errors import DatabaseError, InvalidInput, UsageError
from stratus_sql.observability import Observer
from stratus_sql.statements import Kind, NamedStatement, Statement

if TYPE_CHECKING:
    from stratus_sql.engine.database import Database

__all__ = ["Actor", "Executor", "Runner", "field_types"]

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")
Op = Callable[[Connection], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts in a transaction: recorded with every change it makes.

    `user_id` is a UUID (or its text), `ip_address` an IPv4 or IPv6 address (stored in its
    canonical form), `user_agent` up to 1,000 characters; anything else is InvalidInput.
    """

    user_id: UUID | None = None
    ip_address: str | None = None
    user_agent: str | None = None

    def __post_init__(self) -> None:
        if self.user_id is not None and not isinstance(self.user_id, UUID):
            try:
                object.__setattr__(self, "user_id", UUID(str(self.user_id)))
            except ValueError:
                raise InvalidInput(f"actor user_id: not a UUID: {self.user_id!r:.60}") from None
        if self.ip_address is not None:
            try:
                canonical = str(ipaddress.ip_address(self.ip_address))
            except ValueError:
                raise InvalidInput(
                    f"actor ip_address: not an IP address: {self.ip_address!r:.60}"
                ) from None
            object.__setattr__(self, "ip_address", canonical)
        agent = self.user_agent
        if agent is not None and (
            not isinstance(agent, str)
            or len(agent) > 1000
            or "\x00" in agent
            or not agent.isprintable()
        ):
            raise InvalidInput("actor user_agent: up to 1,000 printable characters")

    def settings(self) -> dict[str, str]:
        """The transaction-local settings the audit triggers read."""
        fields = {
            "stratus.actor_user_id": self.user_id,
            "stratus.actor_ip": self.ip_address,
            "stratus.actor_user_agent": self.user_agent,
        }
        return {name: str(value) for name, value in fields.items() if value is not None}


class Executor(Protocol):
    """What query functions run on: a `Database`, or the handle of an open transaction."""

    @property
    def dialect(self) -> str: ...

    @property
    def database(self) -> Database:
        """The Database this executor runs on (itself, for a Database)."""

    @property
    def in_transaction(self) -> bool:
        """Whether statements run inside a transaction (always, for a transaction handle)."""

    async def fetch_one(
        self, record: type[R], named: NamedStatement, /, **params: Any
    ) -> R | None: ...

    async def fetch_many(
        self, record: type[R], named: NamedStatement, /, **params: Any
    ) -> list[R]: ...

    async def fetch_scalar(self, named: NamedStatement, /, **params: Any) -> Any: ...

    async def execute(self, named: NamedStatement, /, **params: Any) -> None: ...

    async def execute_rows(self, named: NamedStatement, /, **params: Any) -> int: ...

    async def copy(self, named: NamedStatement, rows: Sequence[Sequence[Any]], /) -> int: ...

    def transaction(self, actor: Actor | None = None) -> AbstractAsyncContextManager[Executor]: ...

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Call `hook` once the work done so far is committed: at once outside a
        transaction, after the outermost COMMIT inside one (never if it rolls back)."""


def field_types(record: type[BaseModel]) -> list[tuple[str, Any]]:
    """(name, type) of each field, with `X | None` and `Annotated[X, ...]` unwrapped to X."""
    out = []
    for name, info in record.model_fields.items():
        tp = info.annotation
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        out.append((name, tp))
    return out


# (driver class, record) -> a function from a row to the record.
_decoders: dict[tuple[type[Driver], type[BaseModel], str], Callable[[Row], Any]] = {}


class Runner(abc.ABC):
    """The executor methods, over `_run`: where a statement's connection comes from."""

    _driver: Driver
    _observer: Observer

    @property
    def dialect(self) -> str:
        """`postgres` or `sqlite`."""
        return self._driver.dialect

    @abc.abstractmethod
    async def _run(self, stmt: Statement, op: Op[T]) -> T:
        """`await op(connection)` for one statement."""

    async def fetch_one(self, record: type[R], named: NamedStatement, /, **params: Any) -> R | None:
        """Run a `:one` statement: its row as `record`, or None."""
        stmt = self._statement(named, Kind.ONE, record)
        with self._observer.timing(stmt.name) as timing:
            rows = await self._run(stmt, lambda c: c.fetch(stmt, params))
            timing.rows = len(rows)
        if not rows:
            return None
        if len(rows) > 1:
            raise UsageError(f":one statement {stmt.name!r} returned {len(rows)} rows")
        decoded: R = self._decoder(stmt, record)(rows[0])
        return decoded

    async def fetch_many(self, record: type[R], named: NamedStatement, /, **params: Any) -> list[R]:
        """Run a `:many` statement: its rows as `record`s."""
        stmt = self._statement(named, Kind.MANY, record)
        with self._observer.timing(stmt.name) as timing:
            rows = await self._run(stmt, lambda c: c.fetch(stmt, params))
            timing.rows = len(rows)
        decode = self._decoder(stmt, record)
        return [decode(row) for row in rows]

    async def fetch_scalar(self, named: NamedStatement, /, **params: Any) -> Any:
        """Run a `:scalar` statement: the first column of its first row (None if no row)."""
        stmt = self._statement(named, Kind.SCALAR)
        with self._observer.timing(stmt.name):
            return await self._run(stmt, lambda c: c.fetch_value(stmt, params))

    async def execute(self, named: NamedStatement, /, **params: Any) -> None:
        """Run an `:exec` statement."""
        stmt = self._statement(named, Kind.EXEC)
        with self._observer.timing(stmt.name):
            await self._run(stmt, lambda c: c.execute(stmt, params))

    async def execute_rows(self, named: NamedStatement, /, **params: Any) -> int:
        """Run an `:execrows` statement: the number of rows it changed."""
        stmt = self._statement(named, Kind.EXECROWS)
        with self._observer.timing(stmt.name) as timing:
            timing.rows = await self._run(stmt, lambda c: c.execute(stmt, params))
        return timing.rows

    async def copy(self, named: NamedStatement, rows: Sequence[Sequence[Any]], /) -> int:
        """Bulk-load `rows` with a `:copy` statement, all or nothing; each row holds the
        values of the statement's parameters in their order (`Statement.params`, the same in
        both dialects). Returns the number of rows stored."""
        stmt = self._statement(named, Kind.COPY)
        width = len(stmt.params)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise UsageError(f"{stmt.name}: row {i} has {len(row)} values, not {width}")
        if not rows:
            return 0
        with self._observer.timing(stmt.name) as timing:
            timing.rows = await self._run(stmt, lambda c: c.copy(stmt, rows))
        return timing.rows

    def _statement(
        self, named: NamedStatement, kind: Kind, record: type[BaseModel] | None = None
    ) -> Statement:
        stmt = named.for_dialect(self._driver.dialect)
        if stmt.kind is not kind:
            raise UsageError(f"statement {stmt.name!r} is {stmt.kind}, not {kind}")
        if record is not None and record.__name__ != stmt.record:
            raise UsageError(
                f"statement {stmt.name!r} returns {stmt.record}, not {record.__name__}"
            )
        return stmt

    def _decoder(self, stmt: Statement, record: type[R]) -> Callable[[Row], R]:
        key = (type(self._driver), record, stmt.name)
        decode = _decoders.get(key)
        if decode is None:
            decode = _decoders[key] = _make_decoder(self._driver, stmt.name, record)
        return decode


def _make_decoder(driver: Driver, name: str, record: type[R]) -> Callable[[Row], R]:
    """Rows to `record`s: columns by position, validated by pydantic-core.

    Validating costs no more than building records unvalidated with `model_construct`
    (bench/records.py), and a row the record cannot hold fails here instead of later.
    """
    plan: list[tuple[str, Converter | None]] = [
        (n, driver.converter(tp)) for n, tp in field_types(record)
    ]
    names = [n for n, _ in plan]
    converted = [(i, c) for i, (_, c) in enumerate(plan) if c is not None]
    validate = record.__pydantic_validator__.validate_python

    def decode(row: Row) -> R:
        try:
            if converted:
                values = list(row)
                for i, convert in converted:
                    if values[i] is not None:
                        values[i] = convert(values[i])
                row = values
            result: R = validate(dict(zip(names, row, strict=True)))
        except (ValueError, IndexError) as exc:  # ValidationError, a column short, ...
            raise DatabaseError(
                f"statement {name!r} returned a row {record.__name__} cannot hold "
                f"({len(row)} columns for {len(plan)} fields): {exc}"
            ) from exc
        return result

    return decode
