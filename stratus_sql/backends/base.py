"""The executor interface query functions run statements on, shared by both backends.

An executor is a pool (`Database`) or one connection inside a transaction. Subclasses supply
four primitives (`_fetch`, `_fetch_row`, `_fetch_value`, `_execute`) and a converter per
field type; this class checks kinds and parameters and turns rows into records.
"""

from __future__ import annotations

import abc
import ipaddress
import types
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Protocol, TypeVar, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel

from stratus_sql.cache import MemoryCache
from stratus_sql.errors import DatabaseError, InvalidInput, UsageError
from stratus_sql.observability import Observer
from stratus_sql.statements import Kind, NamedStatement, Statement

__all__ = ["Actor", "BaseExecutor", "Executor", "Json", "field_types"]

R = TypeVar("R", bound=BaseModel)
Row = Sequence[Any]
Converter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Json:
    """A parameter to store as JSON, whatever its Python type (a str becomes a JSON string)."""

    value: Any


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


class Executor(Protocol):
    """What query functions run on: a `Database`, or the handle of an open transaction."""

    @property
    def dialect(self) -> str: ...

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

    @property
    def memory_cache(self) -> MemoryCache | None:
        """The memory cache to read through, or None (disabled, or inside a transaction)."""

    def memory_written(self, user_id: UUID) -> None:
        """Report that a user's memories changed, so cached reads of them are dropped."""


class BaseExecutor(abc.ABC):
    """Shared implementation of `Executor` over four driver primitives."""

    dialect: ClassVar[str]
    _plans: ClassVar[dict[type[BaseModel], list[tuple[str, Converter | None]]]]
    _observer: Observer | None = None  # set by the backend; shared with its transactions

    def __init_subclass__(cls) -> None:
        cls._plans = {}

    async def fetch_one(self, record: type[R], named: NamedStatement, /, **params: Any) -> R | None:
        """Run a `:one` statement: its row as `record`, or None."""
        stmt = self._statement(named, Kind.ONE, record)
        with self._observe(stmt.name) as rows:
            row = await self._fetch_row(stmt, params)
            rows[0] = 0 if row is None else 1
        return None if row is None else self._decoder(stmt, record)(row)

    async def fetch_many(self, record: type[R], named: NamedStatement, /, **params: Any) -> list[R]:
        """Run a `:many` statement: its rows as `record`s."""
        stmt = self._statement(named, Kind.MANY, record)
        with self._observe(stmt.name) as count:
            rows = await self._fetch(stmt, params)
            count[0] = len(rows)
        decode = self._decoder(stmt, record)
        return [decode(row) for row in rows]

    async def fetch_scalar(self, named: NamedStatement, /, **params: Any) -> Any:
        """Run a `:scalar` statement: the first column of its first row (None if no row)."""
        stmt = self._statement(named, Kind.SCALAR)
        with self._observe(stmt.name):
            return await self._fetch_value(stmt, params)

    async def execute(self, named: NamedStatement, /, **params: Any) -> None:
        """Run an `:exec` statement."""
        stmt = self._statement(named, Kind.EXEC)
        with self._observe(stmt.name):
            await self._execute(stmt, params)

    async def execute_rows(self, named: NamedStatement, /, **params: Any) -> int:
        """Run an `:execrows` statement: the number of rows it changed."""
        stmt = self._statement(named, Kind.EXECROWS)
        with self._observe(stmt.name) as rows:
            rows[0] = await self._execute(stmt, params)
        return rows[0]

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
        with self._observe(stmt.name) as count:
            count[0] = await self._copy(stmt, rows)
        return count[0]

    @abc.abstractmethod
    def transaction(self, actor: Actor | None = None) -> AbstractAsyncContextManager[BaseExecutor]:
        """A transaction (a savepoint when one is already open); yields its executor."""

    def _observe(self, name: str) -> AbstractContextManager[list[int]]:
        return self._observer.statement(name) if self._observer else nullcontext([0])

    def _statement(
        self, named: NamedStatement, kind: Kind, record: type[BaseModel] | None = None
    ) -> Statement:
        stmt = named.for_dialect(self.dialect)
        if stmt.kind is not kind:
            raise UsageError(f"statement {stmt.name!r} is {stmt.kind}, not {kind}")
        if record is not None and record.__name__ != stmt.record:
            raise UsageError(
                f"statement {stmt.name!r} returns {stmt.record}, not {record.__name__}"
            )
        return stmt

    def _decoder(self, stmt: Statement, record: type[R]) -> Callable[[Row], R]:
        """Rows of `stmt` to `record`s: columns by position, validated by pydantic-core.

        Validating costs no more than building records unvalidated with `model_construct`
        (bench/records.py), and a row the record cannot hold fails here instead of later.
        """
        plan = self._plans.get(record)
        if plan is None:
            plan = [(n, self._converter(tp)) for n, tp in field_types(record)]
            self._plans[record] = plan
        names = [name for name, _ in plan]
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
                    f"statement {stmt.name!r} returned a row {record.__name__} cannot hold "
                    f"({len(row)} columns for {len(plan)} fields): {exc}"
                ) from exc
            return result

        return decode

    def _converter(self, tp: Any) -> Converter | None:
        """How a non-null column becomes what the field validates; None: as the driver gave it."""
        return None

    @abc.abstractmethod
    async def _fetch(self, stmt: Statement, params: dict[str, Any]) -> Sequence[Row]: ...

    @abc.abstractmethod
    async def _fetch_row(self, stmt: Statement, params: dict[str, Any]) -> Row | None: ...

    @abc.abstractmethod
    async def _fetch_value(self, stmt: Statement, params: dict[str, Any]) -> Any: ...

    @abc.abstractmethod
    async def _execute(self, stmt: Statement, params: dict[str, Any]) -> int: ...

    @abc.abstractmethod
    async def _copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int: ...
