"""SQLite through aiosqlite: the embedded backend.

Every connection runs in WAL mode with foreign keys on and a busy timeout. Writes go through
one writer connection behind an asyncio lock, each transaction opened with BEGIN IMMEDIATE, so
writers in this process queue instead of failing with "database is locked", and writers in
other processes wait on the busy timeout. Read-only statements outside a transaction run on a
small pool of `query_only` reader connections, which WAL lets proceed beside the writer.

Storage: UUIDs as canonical text, timestamps as UTC ISO-8601 text with microseconds
(`2026-11-21T09:30:00.000000Z`, which sorts as time does), JSON as text through orjson.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, get_origin
from uuid import UUID

import aiosqlite
import orjson
from pydantic import JsonValue

from stratus_sql.backends.base import Actor, BaseExecutor, Converter, Json, Row
from stratus_sql.config import Settings, sqlite_path
from stratus_sql.errors import (
    SCHEMA_MISSING,
    AlreadyExists,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    StratusError,
    UsageError,
)
from stratus_sql.observability import Observer
from stratus_sql.retry import backoff
from stratus_sql.statements import Statement, returning_columns, with_nulls

__all__ = ["SqliteBackend", "format_timestamp", "install_functions", "translate"]

T = TypeVar("T")

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_timestamp(value: datetime) -> str:
    """The stored text of an aware datetime: UTC, microseconds, sortable."""
    if value.tzinfo is None:
        raise UsageError("naive datetime passed to the database; use an aware one (UTC)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"datetime out of range once in UTC: {value.isoformat()}") from None
    # isoformat pads the year to four digits (strftime's %Y does not below 1000).
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def install_functions(conn: sqlite3.Connection) -> None:
    """Give a plain sqlite3 connection the SQL functions the schema's triggers call
    (`now_utc()`, `stratus_get(name)`), so it can write to a stratus_sql file: audit rows
    it causes then carry no actor."""
    conn.create_function("now_utc", 0, lambda: format_timestamp(datetime.now(UTC)))
    conn.create_function("stratus_get", 1, lambda name: None)


class _Clock:
    """What `now_utc()` returns on one connection: like Postgres's now(), the time the
    current transaction (or autocommitted statement) started, the same for all its rows."""

    def __init__(self) -> None:
        self.now = ""
        self.tick()

    def tick(self) -> None:
        self.now = datetime.now(UTC).strftime(_TIMESTAMP_FORMAT)

    def read(self) -> str:
        return self.now


def _param(value: Any) -> Any:
    if isinstance(value, Json):
        return orjson.dumps(value.value).decode()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


class _SqliteExecutor(BaseExecutor):
    dialect = "sqlite"

    def _converter(self, tp: Any) -> Converter | None:
        # UUID and datetime parsed here keep the exact types asyncpg returns (a datetime in
        # datetime.UTC); JSON arrives as text.
        if tp is UUID:
            return UUID
        if tp is datetime:
            return datetime.fromisoformat
        if tp is JsonValue or get_origin(tp) in (dict, list):
            return orjson.loads
        return None

    @staticmethod
    async def _run(
        conn: aiosqlite.Connection, stmt: Statement, params: dict[str, Any]
    ) -> tuple[Sequence[Row], int]:
        try:
            with translate():
                args = {k: _param(v) for k, v in stmt.named(params).items()}
                async with conn.execute(stmt.text, args) as cursor:
                    rows = list(await cursor.fetchall())
                    return rows, cursor.rowcount
        except AlreadyExists as exc:
            exc.constraint = await _unique_index_name(conn, exc.constraint)
            raise

    async def _fetch(self, stmt: Statement, params: dict[str, Any]) -> Sequence[Row]:
        return (await self._on_connection(stmt, params))[0]

    async def _fetch_row(self, stmt: Statement, params: dict[str, Any]) -> Row | None:
        rows = (await self._on_connection(stmt, params))[0]
        if len(rows) > 1:
            raise UsageError(f":one statement {stmt.name!r} returned {len(rows)} rows")
        return rows[0] if rows else None

    async def _fetch_value(self, stmt: Statement, params: dict[str, Any]) -> Any:
        rows = (await self._on_connection(stmt, params))[0]
        return rows[0][0] if rows else None

    async def _execute(self, stmt: Statement, params: dict[str, Any]) -> int:
        return max((await self._on_connection(stmt, params))[1], 0)

    @abc.abstractmethod
    async def _copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int: ...

    @abc.abstractmethod
    async def _on_connection(
        self, stmt: Statement, params: dict[str, Any]
    ) -> tuple[Sequence[Row], int]:
        """Run on the connection this executor stands for."""


class _SqliteTransaction(_SqliteExecutor):
    """An executor on the writer connection inside an open transaction."""

    _savepoints = itertools.count(1)

    def __init__(self, conn: aiosqlite.Connection, observer: Observer | None = None) -> None:
        self._conn = conn
        self._observer = observer

    async def _on_connection(
        self, stmt: Statement, params: dict[str, Any]
    ) -> tuple[Sequence[Row], int]:
        return await self._run(self._conn, stmt, params)

    async def _copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int:
        return await _executemany(self._conn, stmt, rows)

    @asynccontextmanager
    async def transaction(self, actor: Actor | None = None) -> AsyncIterator[BaseExecutor]:
        if actor is not None:
            raise UsageError("an actor can only be set on the outermost transaction")
        name = f"sp_{next(self._savepoints)}"
        async with _atomic(self._conn, f"SAVEPOINT {name}", f"RELEASE {name}", name):
            yield self


class SqliteBackend(_SqliteExecutor):
    """The embedded database: one writer connection and a pool of readers."""

    def __init__(self, path: str, settings: Settings, writer: aiosqlite.Connection) -> None:
        self.settings = settings
        self._path = path
        self._writer = writer
        self._lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._reader_count = 0
        self._all_readers: list[aiosqlite.Connection] = []
        # What Postgres keeps in transaction-local `stratus.*` settings: the actor and flags
        # such as audit_redaction. Writes are serialized, so one slot serves every transaction.
        self._settings: dict[str, str] = {}
        self._observer = Observer("sqlite", settings.slow_query_ms)
        self._clocks: dict[aiosqlite.Connection, _Clock] = {}

    def _begin(self) -> AbstractAsyncContextManager[None]:
        """A write transaction on the writer connection; a busy BEGIN is retried."""
        return _atomic(
            self._writer,
            "BEGIN IMMEDIATE",
            "COMMIT",
            retries=self.settings.retry_attempts,
            observer=self._observer,
        )

    @classmethod
    async def open(cls, settings: Settings) -> SqliteBackend:
        path = sqlite_path(settings.database_url)
        if not Path(path).parent.is_dir():
            raise DatabaseUnavailable(f"cannot open SQLite file {path}: no such directory")
        clock = _Clock()
        backend = cls(path, settings, await _connect(path, settings, clock, readonly=False))
        backend._clocks[backend._writer] = clock
        await backend._writer.create_function("stratus_get", 1, backend._settings.get)
        await backend._writer.create_function("stratus_set", 2, backend._set)
        return backend

    def _set(self, name: str, value: str) -> str:
        """`stratus_set(name, value)`, for the rest of the current transaction."""
        self._settings[name] = value
        return value

    def pool_sizes(self) -> tuple[int, int]:
        """(connections open: the writer and the readers, of which idle readers)."""
        return 1 + len(self._all_readers), self._readers.qsize()

    async def describe(self, stmt: Statement) -> list[str]:
        """Compile `stmt` (EXPLAIN, nothing runs); the names of its result columns.

        A query is described through a temporary view of it with NULL for every parameter; a
        write by the names in its RETURNING list.
        """
        unbound = dict.fromkeys(stmt.params)
        async with self._write_lock():
            with translate():
                await self._writer.execute(f"EXPLAIN {stmt.text}", unbound)
                if not stmt.readonly:
                    return returning_columns(stmt) or []
                await self._writer.execute(
                    f"CREATE TEMP VIEW stratus_describe AS {with_nulls(stmt)}"
                )
                try:
                    async with self._writer.execute(
                        "PRAGMA temp.table_info(stratus_describe)"
                    ) as c:
                        return [row[1] for row in await c.fetchall()]
                finally:
                    await self._writer.execute("DROP VIEW temp.stratus_describe")

    async def close(self) -> None:
        """Close every connection, after the write in progress if it ends in time."""
        try:
            async with self._write_lock():
                await self._close_connections()
        except Conflict:
            await self._close_connections()

    async def _close_connections(self) -> None:
        for conn in [*self._all_readers, self._writer]:
            await conn.close()
        self._all_readers.clear()

    async def _on_connection(
        self, stmt: Statement, params: dict[str, Any]
    ) -> tuple[Sequence[Row], int]:
        if stmt.readonly:
            reader = await self._acquire_reader()
            try:
                self._clocks[reader].tick()
                return await self._run(reader, stmt, params)
            finally:
                self._readers.put_nowait(reader)
        async with self._write_lock():
            self._clocks[self._writer].tick()
            # An autocommit write refused as busy was not applied.
            return await _retry_busy(
                stmt.name,
                lambda: self._run(self._writer, stmt, params),
                self.settings.retry_attempts,
                self._observer,
            )

    async def _copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int:
        """All rows in one transaction: one executemany between BEGIN IMMEDIATE and COMMIT."""
        async with self._write_lock():
            self._clocks[self._writer].tick()
            async with self._begin():
                return await _executemany(self._writer, stmt, rows)

    @asynccontextmanager
    async def _write_lock(self) -> AsyncIterator[None]:
        """The writer connection, waited for at most DB_BUSY_TIMEOUT_MS."""
        try:
            async with asyncio.timeout(self.settings.busy_timeout_ms / 1000):
                await self._lock.acquire()
        except TimeoutError:
            # Nothing ran yet: a transient failure run_transaction may retry.
            raise Conflict(
                "the database stayed busy with another write for DB_BUSY_TIMEOUT_MS "
                f"({self.settings.busy_timeout_ms} ms)"
            ).transient() from None
        try:
            yield
        finally:
            self._lock.release()

    async def _acquire_reader(self) -> aiosqlite.Connection:
        if self._readers.empty() and self._reader_count < self.settings.pool_max_size:
            self._reader_count += 1
            try:
                clock = _Clock()
                conn = await _connect(self._path, self.settings, clock, readonly=True)
                self._clocks[conn] = clock
            except BaseException:
                self._reader_count -= 1
                raise
            self._all_readers.append(conn)
            return conn
        return await self._readers.get()

    @asynccontextmanager
    async def transaction(
        self, actor: Actor | None = None, *, scoped: bool = False
    ) -> AsyncIterator[BaseExecutor]:
        if scoped:
            raise UsageError("scoped transactions (row-level security) need PostgreSQL")
        async with self._write_lock():
            self._settings.clear()
            if actor is not None:
                self._settings.update(_actor_settings(actor))
            self._clocks[self._writer].tick()
            try:
                async with self._begin():
                    yield _SqliteTransaction(self._writer, self._observer)
            finally:
                self._settings.clear()


async def _executemany(
    conn: aiosqlite.Connection, stmt: Statement, rows: Sequence[Sequence[Any]]
) -> int:
    with translate():
        args = [[_param(v) for v in row] for row in rows]
        await conn.executemany(stmt.copy_text, args)
    return len(args)


async def _retry_busy(
    name: str, run: Callable[[], Awaitable[T]], retries: int, observer: Observer | None
) -> T:
    """`await run()`, tried again (up to `retries` times, after a jittered backoff) while it
    fails because another process holds the write lock; such a failure changed nothing."""
    attempt = 0
    while True:
        try:
            return await run()
        except Conflict as exc:
            if attempt >= retries or not exc.retryable:
                raise
        attempt += 1
        if observer is not None:
            observer.retried(name)
        await asyncio.sleep(backoff(attempt))


@asynccontextmanager
async def _atomic(
    conn: aiosqlite.Connection,
    begin: str,
    commit: str,
    savepoint: str | None = None,
    *,
    retries: int = 0,
    observer: Observer | None = None,
) -> AsyncIterator[None]:
    """Run the block between `begin` and `commit`; roll back (to the savepoint) on error.

    A `begin` that stays busy past busy_timeout (another process kept the write lock; SQLite's
    lock is not fair, so a writer can starve) has done nothing yet: it is tried again up to
    `retries` times after a jittered backoff.
    """

    async def start() -> None:
        with translate():
            await conn.execute(begin)

    await _retry_busy(begin, start, retries, observer)
    try:
        yield
        with translate():
            await conn.execute(commit)
    except BaseException:
        # SQLite may already have rolled back on its own (after SQLITE_FULL, for example);
        # then there is nothing to undo, and the block's own error is the one to report.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                if savepoint is None:
                    await conn.execute("ROLLBACK")
                else:
                    await conn.execute(f"ROLLBACK TO {savepoint}")
                    await conn.execute(f"RELEASE {savepoint}")
        raise


async def _connect(
    path: str, settings: Settings, clock: _Clock, *, readonly: bool
) -> aiosqlite.Connection:
    try:
        connecting = aiosqlite.connect(path, isolation_level=None)
        # The connection's worker thread must not keep the interpreter alive: a process that
        # forgot Database.close() still exits.
        connecting._thread.daemon = True
        conn = await connecting
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot open SQLite file {path}: {exc}") from exc
    try:
        with translate():
            await conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
            await _use_wal(conn, settings.busy_timeout_ms / 1000)
            # FULL: a committed transaction survives a power cut, not only a crash.
            await conn.execute("PRAGMA synchronous = FULL")
            await conn.execute("PRAGMA foreign_keys = ON")
            # Deleted content is overwritten, not only unlinked (erasure leaves no trace).
            await conn.execute("PRAGMA secure_delete = ON")
            if readonly:
                await conn.execute("PRAGMA query_only = ON")
            await conn.create_function("now_utc", 0, clock.read)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _use_wal(conn: aiosqlite.Connection, patience: float) -> None:
    """Switch the file to WAL. The switch does not wait for the busy handler: while another
    process opens or migrates the same new file it fails at once with "database is locked",
    so it is retried for up to `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.01)


def _actor_settings(actor: Actor) -> dict[str, str]:
    fields = {
        "actor_user_id": actor.user_id,
        "actor_ip": actor.ip_address,
        "actor_user_agent": actor.user_agent,
    }
    return {name: str(value) for name, value in fields.items() if value is not None}


async def _unique_index_name(conn: aiosqlite.Connection, failed: str | None) -> str | None:
    """The name of the unique index behind SQLite's "UNIQUE constraint failed: t.a, t.b".

    SQLite names the columns of a column index (and the index itself only for expression
    indexes: "index 'name'"); Postgres names the constraint. Unique constraints are declared
    as named unique indexes in the SQLite schema so both backends report the same name.
    """
    if not failed:
        return failed
    if failed.startswith("index '"):
        return failed[len("index '") : -1]
    table, _, _ = failed.partition(".")
    columns = [c.strip().partition(".")[2] for c in failed.split(",")]
    with translate():
        async with conn.execute(
            'SELECT name FROM pragma_index_list(?) WHERE "unique"', [table]
        ) as c:
            names = [row[0] for row in await c.fetchall()]
        for name in names:
            async with conn.execute(
                "SELECT name FROM pragma_index_info(?) ORDER BY seqno", [name]
            ) as c:
                if [row[0] for row in await c.fetchall()] == columns:
                    return str(name)
    return failed


@contextmanager
def translate() -> Iterator[None]:
    """Re-raise sqlite3 errors as stratus_sql errors, chaining the original."""
    try:
        yield
    except StratusError:
        raise
    except sqlite3.Error as exc:
        raise _sqlite_error(exc) from exc
    except OverflowError as exc:  # an int beyond SQLite's 64-bit INTEGER
        raise InvalidInput(f"value out of range for SQLite: {exc}") from exc
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(f"value cannot be stored as JSON: {exc}") from exc


def _sqlite_error(exc: sqlite3.Error) -> StratusError:
    code = getattr(exc, "sqlite_errorname", "") or ""
    message = str(exc)
    if code in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        constraint = message.split("failed: ", 1)[-1] if "failed: " in message else None
        return AlreadyExists(f"already exists: {message}", constraint=constraint)
    if code == "SQLITE_CONSTRAINT_TRIGGER":  # RAISE(ABORT, ...): a trigger's own refusal
        if message.startswith("FOREIGN KEY"):
            return NotFound(f"a referenced row does not exist ({message})")
        return DatabaseError(f"refused by the database: {message}")
    if code == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return NotFound("a referenced row does not exist (FOREIGN KEY)")
    if code.startswith("SQLITE_CONSTRAINT") or code in ("SQLITE_TOOBIG", "SQLITE_MISMATCH"):
        return InvalidInput(f"rejected by the database: {message}")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return Conflict(f"database busy: {message}").transient()
    if code.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_NOTADB", "SQLITE_FULL")):
        return DatabaseUnavailable(f"SQLite file unusable: {message}")
    if isinstance(exc, sqlite3.ProgrammingError):
        return UsageError(f"SQLite misuse: {message}")
    if message.startswith("no such table"):
        return DatabaseError(f"[{code or type(exc).__name__}] {message}: {SCHEMA_MISSING}")
    return DatabaseError(f"[{code or type(exc).__name__}] {message}")
