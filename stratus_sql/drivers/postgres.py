"""PostgreSQL through an asyncpg pool (and an optional replica pool).

json and jsonb are encoded and decoded by orjson on every connection, so dicts, lists and
scalars round-trip as JSON values (never as a JSON string holding JSON). Enums and UUIDs go
over the wire natively. Driver errors are translated here, keyed by SQLSTATE
(`drivers/pgerrors.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from stratus_sql.config import Settings
from stratus_sql.drivers.deadlines import Deadlines
from stratus_sql.drivers.interface import (
    Capabilities,
    Connection,
    Driver,
    Json,
    Row,
    prefer_primary,
)
from stratus_sql.drivers.pgconnect import UnprotectedRoleWarning, create_pool, warn_if_unprotected
from stratus_sql.drivers.pgerrors import DRIVER_ERRORS, may_pass, translated, where
from stratus_sql.errors import DatabaseUnavailable, PoolExhausted
from stratus_sql.observability import current_trace_id, logger
from stratus_sql.statements import Statement

__all__ = ["PostgresDriver", "UnprotectedRoleWarning"]

_Conn = asyncpg.Connection | PoolConnectionProxy

_SET_LOCAL = "SELECT set_config(k, v, true) FROM unnest($1::text[], $2::text[]) AS s(k, v)"
_REPLICA_PAUSE = 1.0  # seconds reads stay on the primary after the replica failed


class PostgresConnection(Connection):
    """One asyncpg connection; every error leaves it translated."""

    __slots__ = ("_conn",)

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        try:
            records = await self._conn.fetch(stmt.text, *_args(stmt, params))
        except DRIVER_ERRORS as exc:
            raise translated(exc) from exc
        # asyncpg Records index and iterate like tuples; the stubs do not call them Sequences.
        return cast(Sequence[Row], records)

    async def fetch_value(self, stmt: Statement, params: Mapping[str, Any]) -> Any:
        try:
            return await self._conn.fetchval(stmt.text, *_args(stmt, params))
        except DRIVER_ERRORS as exc:
            raise translated(exc) from exc

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        try:
            status: str = await self._conn.execute(stmt.text, *_args(stmt, params))
        except DRIVER_ERRORS as exc:
            raise translated(exc) from exc
        # Status tags end in the row count ("UPDATE 3", "INSERT 0 1"); others have none.
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int:
        table, columns = stmt.copy_table or "", list(stmt.copy_columns)
        conn = self._conn
        try:
            # COPY FROM is refused where row-level security applies (a scoped transaction;
            # a login that is not the owner, or an owner under FORCE): there, one INSERT of
            # unnested column arrays, checked by the policies.
            if await conn.fetchval("SELECT row_security_active($1::regclass)", table):
                insert = await _unnest_insert(conn, table, columns)
                await conn.execute(insert, *(list(c) for c in zip(*rows, strict=True)))
            else:  # binary COPY: one round trip for the whole batch, all or nothing
                await conn.copy_records_to_table(table, records=rows, columns=columns)
        except DRIVER_ERRORS as exc:
            raise translated(exc) from exc
        return len(rows)

    async def _run(self, sql: str, *args: Any) -> None:
        try:
            await self._conn.execute(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translated(exc) from exc

    async def begin(self) -> None:
        await self._run("BEGIN")

    async def commit(self) -> None:
        await self._run("COMMIT")

    async def rollback(self) -> None:
        await self._run("ROLLBACK")

    async def savepoint(self, name: str) -> None:
        await self._run(f"SAVEPOINT {name}")

    async def release(self, name: str) -> None:
        await self._run(f"RELEASE SAVEPOINT {name}")

    async def rollback_to(self, name: str) -> None:
        await self._run(f"ROLLBACK TO SAVEPOINT {name}")
        await self._run(f"RELEASE SAVEPOINT {name}")

    async def set_local(self, settings: Mapping[str, str]) -> None:
        await self._run(_SET_LOCAL, list(settings), list(settings.values()))

    async def scope(self, role: str) -> None:
        await self._run(f'SET LOCAL ROLE "{role}"')

    def discard(self) -> None:
        with contextlib.suppress(asyncpg.InterfaceError):
            self._conn.terminate()


class PostgresDriver(Driver):
    """The pool: each statement outside a transaction runs on any free connection."""

    dialect = "postgres"
    capabilities: ClassVar[Capabilities] = Capabilities(listen=True, replica=True, roles=True)

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, replica: asyncpg.Pool | None = None
    ) -> None:
        self._pool = pool
        self._replica = replica
        self._replica_paused_until = 0.0
        self._replica_down = False
        self._leased = 0  # primary connections handed out and not given back yet
        self.settings = settings
        self._where = where(settings.database_url)
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False
        self._deadlines = Deadlines()

    @classmethod
    async def open(cls, settings: Settings) -> PostgresDriver:
        pool = await create_pool(settings.database_url, settings, settings.pool_min_size)
        replica = None
        if settings.replica_url is not None:
            # Opened empty: a replica that is down must not keep the service from starting.
            replica = await create_pool(settings.replica_url, settings, 0)
        driver = cls(pool, settings, replica)
        async with driver.connection(write=True) as conn:
            await warn_if_unprotected(cast(PostgresConnection, conn)._conn)
        return driver

    def connection(self, *, write: bool, replica: bool = False) -> _Lease:
        return _Lease(self, replica and not write)

    async def _take(self, replica_ok: bool) -> tuple[asyncpg.Pool, PoolConnectionProxy]:
        """A pooled connection: the replica's for a read when there is one that did not
        fail in the last second, else the primary's."""
        replica = self._replica
        if (
            replica_ok
            and replica is not None
            and not prefer_primary.get()
            and time.monotonic() >= self._replica_paused_until
        ):
            try:
                return replica, await replica.acquire(timeout=self.settings.connect_timeout)
            except DRIVER_ERRORS as exc:  # a timeout included
                lost = DatabaseUnavailable(
                    f"cannot connect to the replica at {where(self.settings.replica_url or '')}"
                )
                lost.__cause__ = exc
                self._replica_lost(lost)
        # A free slot is handed over at once (asyncpg's own timeout starts a task: two more
        # turns of the event loop); only connecting it, if need be, can take time, bounded by
        # DB_POOL_TIMEOUT like any wait for a connection, through the driver's one timer.
        # The slot is counted before the wait.
        free = self._leased < self.settings.pool_max_size
        self._leased += 1
        try:
            if free:
                with self._deadlines.bound(self.settings.pool_timeout):
                    return self._pool, await self._pool.acquire()
            return self._pool, await self._pool.acquire(timeout=self.settings.pool_timeout)
        except TimeoutError as exc:
            self._leased -= 1
            if free:  # no wait for a slot: only connecting it can have timed out
                raise self._unreachable(exc) from exc
            raise PoolExhausted(
                f"no free connection in the pool of {self.settings.pool_max_size} within "
                f"DB_POOL_TIMEOUT ({self.settings.pool_timeout} s)"
            ) from None
        except DRIVER_ERRORS as exc:
            self._leased -= 1
            raise self._unreachable(exc) from exc
        except BaseException:
            self._leased -= 1
            raise

    def _unreachable(self, exc: BaseException) -> DatabaseUnavailable:
        # Nothing was sent yet, so any statement may be retried, when the cause can pass.
        error = DatabaseUnavailable(f"cannot connect to PostgreSQL at {self._where}: {exc}")
        if may_pass(exc):
            error.transient()
        return error

    def _replica_lost(self, exc: DatabaseUnavailable) -> None:
        """Send reads to the primary for a second; log once per outage."""
        self._replica_paused_until = time.monotonic() + _REPLICA_PAUSE
        if not self._replica_down:
            self._replica_down = True
            logger.warning(
                "replica unavailable, reading from the primary: %s (%s)",
                exc,
                exc.__cause__,
                extra={"trace_id": current_trace_id(), "metrics": {}},
            )

    async def listen(
        self, channel: str, on_notice: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> None:
        """LISTEN on a connection of its own (to DATABASE_LISTEN_URL when set: LISTEN needs
        a session, which a transaction pooler does not keep), not taken from the pool (a
        pool of one would have none left). When it is lost, `on_state(False)`; it is remade
        every second, then `on_state(True)`."""

        async def connect() -> None:
            conn = await asyncpg.connect(
                self.settings.listen_url or self.settings.database_url,
                timeout=self.settings.connect_timeout,
            )
            await conn.add_listener(channel, lambda _c, _p, _ch, payload: on_notice(payload))
            conn.add_termination_listener(lambda _c: lost())
            self._listener = conn
            on_state(True)

        async def reconnect() -> None:
            while not self._closing:
                await asyncio.sleep(1.0)
                with contextlib.suppress(*DRIVER_ERRORS):
                    await connect()
                    return

        def lost() -> None:
            if self._closing:
                return
            on_state(False)
            if self._relisten is None or self._relisten.done():
                self._relisten = asyncio.get_running_loop().create_task(reconnect())

        try:
            await connect()
        except DRIVER_ERRORS as exc:
            raise translated(exc) from exc

    def listener_pid(self) -> int | None:
        """The server process of the LISTEN connection, while it is up."""
        listener = self._listener
        return None if listener is None or listener.is_closed() else listener.get_server_pid()

    def pool_sizes(self) -> tuple[int, int]:
        return self._pool.get_size(), self._pool.get_idle_size()

    async def describe(self, stmt: Statement) -> list[str]:
        async with self.connection(write=True) as conn:
            try:
                prepared = await cast(PostgresConnection, conn)._conn.prepare(stmt.text)
            except DRIVER_ERRORS as exc:
                raise translated(exc) from exc
            return [attribute.name for attribute in prepared.get_attributes()]

    async def close(self) -> None:
        self._closing = True
        self._deadlines.close()
        if self._relisten is not None:
            self._relisten.cancel()
        if self._listener is not None and not self._listener.is_closed():
            listener, self._listener = self._listener, None
            listener.terminate()
        for pool in (self._pool, self._replica):
            if pool is None:
                continue
            try:
                await asyncio.wait_for(pool.close(), timeout=self.settings.command_timeout)
            except TimeoutError:
                pool.terminate()  # a connection still busy past the timeout is cut


class _Lease(PostgresConnection):
    """`PostgresDriver.connection()`: a pooled connection for the block, given back after;
    the lease is the block's Connection too (one object a statement, not two)."""

    __slots__ = ("_driver", "_pool", "_replica_ok")

    def __init__(self, driver: PostgresDriver, replica_ok: bool) -> None:
        self._driver = driver
        self._replica_ok = replica_ok

    async def __aenter__(self) -> Connection:
        self._pool, self._conn = await self._driver._take(self._replica_ok)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        driver, pool, conn = self._driver, self._pool, cast(PoolConnectionProxy, self._conn)
        if isinstance(error, DatabaseUnavailable):
            # Never hand a connection that failed this way to the next caller.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            if pool is not driver._pool:
                driver._replica_lost(error)
        elif pool is not driver._pool and error is None:
            driver._replica_down = False
        try:
            # After a timed-out statement asyncpg first waits for the server to acknowledge
            # the cancel; a server that hangs never does, so the wait is bounded, and ends in
            # TimeoutError (or a lost link). The statement's own error is the one the caller
            # must see, so such a connection is closed instead of reported. A clean release
            # does no I/O and needs no timer.
            budget = None if error is None else driver.settings.pool_timeout
            await pool.release(conn, timeout=budget)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
        finally:
            if pool is driver._pool:
                driver._leased -= 1


_unnest_inserts: dict[tuple[str, tuple[str, ...]], str] = {}


async def _unnest_insert(conn: _Conn, table: str, columns: list[str]) -> str:
    """`INSERT INTO table (columns) SELECT * FROM unnest($1::type[], ...)`, types looked up once."""
    key = (table, tuple(columns))
    if key not in _unnest_inserts:
        found = await conn.fetch(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = $1::regclass AND attname = ANY($2::text[])",
            table,
            columns,
        )
        types: dict[str, str] = {row[0]: row[1] for row in found}
        arrays = ", ".join(f"${i}::{types[c]}[]" for i, c in enumerate(columns, start=1))
        names = ", ".join(f'"{c}"' for c in columns)
        _unnest_inserts[key] = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})"
    return _unnest_inserts[key]


# asyncpg sends None as SQL NULL without calling the codec; JSON null must reach the codec.
_JSON_NULL = orjson.Fragment(b"null")


def _args(stmt: Statement, params: Mapping[str, Any]) -> list[Any]:
    args = stmt.positional(params)
    return [(_JSON_NULL if v.value is None else v.value) if type(v) is Json else v for v in args]
