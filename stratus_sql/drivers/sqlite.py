"""SQLite through aiosqlite: the embedded database.

Every connection runs in WAL mode with foreign keys on and a busy timeout. Writes go through
one writer connection behind an asyncio lock, each transaction opened with BEGIN IMMEDIATE, so
writers in this process queue instead of failing with "database is locked", and writers in
other processes wait on the busy timeout. Read-only statements outside a transaction run on a
small pool of `query_only` reader connections, which WAL lets proceed beside the writer.

Storage: UUIDs as canonical text, timestamps as UTC ISO-8601 text with microseconds
(`2026-11-21T09:30:00.000000Z`, which sorts as time does), JSON as text through orjson.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, cast, get_origin
from uuid import UUID

import aiosqlite
import orjson
from pydantic import JsonValue

from stratus_sql.config import Settings, sqlite_path
from stratus_sql.drivers.interface import Connection, Converter, Driver, Json, Row
from stratus_sql.drivers.sqliteerrors import ERRORS, translated, unique_index_name
from stratus_sql.errors import (
    AlreadyExists,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    UsageError,
)
from stratus_sql.statements import Statement, returning_columns, with_nulls

__all__ = ["SqliteDriver", "format_timestamp", "install_functions"]

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SETTING = "stratus."


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


class SqliteConnection(Connection):
    """The writer, or a reader; every error leaves it translated."""

    __slots__ = ("_clock", "_conn", "_settings")

    def __init__(self, conn: aiosqlite.Connection, clock: _Clock, settings: dict[str, str]):
        self._conn = conn
        self._clock = clock
        self._settings = settings

    async def _run(self, sql: str, args: Any = ()) -> tuple[list[Row], int]:
        try:
            async with self._conn.execute(sql, args) as cursor:
                return list(await cursor.fetchall()), cursor.rowcount
        except ERRORS as exc:
            error = translated(exc)
            if isinstance(error, AlreadyExists):
                error.constraint = await unique_index_name(self._conn, error.constraint)
            raise error from exc

    async def _statement(self, stmt: Statement, params: Mapping[str, Any]) -> tuple[list[Row], int]:
        try:
            values = stmt.positional(params)  # checked: every parameter, nothing else
            args = {name: _param(v) for name, v in zip(stmt.params, values, strict=True)}
        except ERRORS as exc:
            raise translated(exc) from exc
        return await self._run(stmt.text, args)

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        return (await self._statement(stmt, params))[0]

    async def fetch_value(self, stmt: Statement, params: Mapping[str, Any]) -> Any:
        rows = (await self._statement(stmt, params))[0]
        return rows[0][0] if rows else None

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        return max((await self._statement(stmt, params))[1], 0)

    async def copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int:
        """One executemany; outside a transaction, between BEGIN IMMEDIATE and COMMIT."""
        try:
            args = [[_param(v) for v in row] for row in rows]
        except ERRORS as exc:
            raise translated(exc) from exc
        alone = not self._conn.in_transaction
        if alone:
            await self.begin()
        try:
            await self._conn.executemany(stmt.copy_text, args)
        except ERRORS as exc:
            if alone:
                await self.rollback()
            raise translated(exc) from exc
        except BaseException:
            if alone:
                await self.rollback()
            raise
        if alone:
            await self.commit()
        return len(args)

    async def begin(self) -> None:
        self._clock.tick()
        await self._run(SqliteDriver.begin_statement)

    async def commit(self) -> None:
        await self._run("COMMIT")

    async def rollback(self) -> None:
        # SQLite may already have rolled back on its own (after SQLITE_FULL, for example).
        if self._conn.in_transaction:
            await self._run("ROLLBACK")

    async def savepoint(self, name: str) -> None:
        await self._run(f"SAVEPOINT {name}")

    async def release(self, name: str) -> None:
        await self._run(f"RELEASE {name}")

    async def rollback_to(self, name: str) -> None:
        if self._conn.in_transaction:
            await self._run(f"ROLLBACK TO {name}")
            await self._run(f"RELEASE {name}")

    async def set_local(self, settings: Mapping[str, str]) -> None:
        """`stratus.*` settings are what `stratus_get(name)` returns until the writer is
        given back; writes are serialized, so one slot serves every transaction."""
        for name, value in settings.items():
            if name.startswith(_SETTING):
                self._settings[name.removeprefix(_SETTING)] = value

    def discard(self) -> None:
        """A SQLite connection is a file handle: nothing on it outlives the error."""


class SqliteDriver(Driver):
    """The embedded database: one writer connection and a pool of readers."""

    dialect = "sqlite"
    begin_statement = "BEGIN IMMEDIATE"

    def __init__(self, path: str, settings: Settings, writer: aiosqlite.Connection) -> None:
        self.settings = settings
        self._path = path
        self._writer = writer
        self._writer_clock = _Clock()
        self._lock = asyncio.Lock()
        self._readers: asyncio.Queue[tuple[aiosqlite.Connection, _Clock]] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._reader_count = 0  # readers open or opening, at most DB_POOL_MAX_SIZE
        # What Postgres keeps in transaction-local `stratus.*` settings: the actor and flags
        # such as audit_redaction, read by the triggers through stratus_get().
        self._settings: dict[str, str] = {}

    @classmethod
    async def open(cls, settings: Settings) -> SqliteDriver:
        path = sqlite_path(settings.database_url)
        if not Path(path).parent.is_dir():
            raise DatabaseUnavailable(f"cannot open SQLite file {path}: no such directory")
        writer = await _connect(path, settings, readonly=False)
        driver = cls(path, settings, writer)
        await writer.create_function("now_utc", 0, driver._writer_clock.read)
        await writer.create_function("stratus_get", 1, driver._settings.get)
        await writer.create_function("stratus_set", 2, driver._set)
        return driver

    def _set(self, name: str, value: str) -> str:
        """`stratus_set(name, value)`, for the rest of the current transaction."""
        self._settings[name] = value
        return value

    @asynccontextmanager
    async def connection(self, *, write: bool, replica: bool = False) -> AsyncIterator[Connection]:
        if not write:
            conn, clock = await self._acquire_reader()
            try:
                clock.tick()
                yield SqliteConnection(conn, clock, {})
            finally:
                self._readers.put_nowait((conn, clock))
            return
        async with self._write_lock():
            self._settings.clear()
            self._writer_clock.tick()
            try:
                yield SqliteConnection(self._writer, self._writer_clock, self._settings)
            except BaseException:
                await self._settle()
                raise
            finally:
                self._settings.clear()

    async def _settle(self) -> None:
        """After a block that failed (a cancellation included), leave the writer outside
        any transaction before the next one takes it: a cancelled BEGIN (or ROLLBACK) still
        runs to its end on the connection's thread, which a later statement waits for."""
        # The block's own error is the one to report (raised again by the caller).
        with contextlib.suppress(asyncio.CancelledError, sqlite3.Error):
            await asyncio.shield(self._rollback_pending())

    async def _rollback_pending(self) -> None:
        await self._writer.execute("SELECT 1")  # after whatever was queued before it
        if self._writer.in_transaction:
            await self._writer.execute("ROLLBACK")

    def pool_sizes(self) -> tuple[int, int]:
        """(connections open: the writer and the readers, of which idle readers)."""
        return 1 + len(self._all_readers), self._readers.qsize()

    def converter(self, tp: Any) -> Converter | None:
        # UUID and datetime parsed here keep the exact types asyncpg returns (a datetime in
        # datetime.UTC); JSON arrives as text.
        if tp is UUID:
            return UUID
        if tp is datetime:
            return datetime.fromisoformat
        if tp is JsonValue or get_origin(tp) in (dict, list):
            return orjson.loads
        return None

    async def describe(self, stmt: Statement) -> list[str]:
        """Compile `stmt` (EXPLAIN, nothing runs). A query is described through a temporary
        view of it with NULL for every parameter; a write by its RETURNING list."""
        async with self.connection(write=True) as conn:
            run = cast(SqliteConnection, conn)._run
            await run(f"EXPLAIN {stmt.text}", dict.fromkeys(stmt.params))
            if not stmt.readonly:
                return returning_columns(stmt) or []
            await run(f"CREATE TEMP VIEW stratus_describe AS {with_nulls(stmt)}")
            try:
                rows, _ = await run("PRAGMA temp.table_info(stratus_describe)")
                return [row[1] for row in rows]
            finally:
                await run("DROP VIEW temp.stratus_describe")

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

    @asynccontextmanager
    async def _write_lock(self) -> AsyncIterator[None]:
        """The writer connection, waited for at most DB_BUSY_TIMEOUT_MS."""
        try:
            async with asyncio.timeout(self.settings.busy_timeout_ms / 1000):
                await self._lock.acquire()
        except TimeoutError:
            # Nothing ran yet: a transient failure that may be retried.
            raise Conflict(
                "the database stayed busy with another write for DB_BUSY_TIMEOUT_MS "
                f"({self.settings.busy_timeout_ms} ms)"
            ).transient() from None
        try:
            yield
        finally:
            self._lock.release()

    async def _acquire_reader(self) -> tuple[aiosqlite.Connection, _Clock]:
        if self._readers.empty() and self._reader_count < self.settings.pool_max_size:
            self._reader_count += 1
            clock = _Clock()
            try:
                conn = await _connect(self._path, self.settings, readonly=True)
            except BaseException:
                self._reader_count -= 1
                raise
            try:
                await conn.create_function("now_utc", 0, clock.read)
            except BaseException:
                self._reader_count -= 1
                await conn.close()
                raise
            self._all_readers.append(conn)
            return conn, clock
        return await self._readers.get()


async def _connect(path: str, settings: Settings, *, readonly: bool) -> aiosqlite.Connection:
    try:
        connecting = aiosqlite.connect(path, isolation_level=None)
        # The connection's worker thread must not keep the interpreter alive: a process that
        # forgot Database.close() still exits.
        connecting._thread.daemon = True
        conn = await connecting
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot open SQLite file {path}: {exc}") from exc
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
        await _use_wal(conn, settings.busy_timeout_ms / 1000)
        # FULL: a committed transaction survives a power cut, not only a crash.
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
        # Deleted content is overwritten, not only unlinked (erasure leaves no trace).
        await conn.execute("PRAGMA secure_delete = ON")
        if readonly:
            await conn.execute("PRAGMA query_only = ON")
    except ERRORS as exc:
        await conn.close()
        raise translated(exc) from exc
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
