"""PostgreSQL through an asyncpg pool.

json and jsonb are encoded and decoded by orjson on every connection, so dicts, lists and
scalars round-trip as JSON values (never as a JSON string holding JSON). Enums and UUIDs go
over the wire natively. Driver errors are translated here, keyed by SQLSTATE.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from stratus_sql.backends.base import Actor, BaseExecutor, Json, Row
from stratus_sql.cache import MemoryCache
from stratus_sql.config import Settings
from stratus_sql.errors import (
    SCHEMA_MISSING,
    AlreadyExists,
    CommitUnknown,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PoolExhausted,
    QueryTimeout,
    StratusError,
    UsageError,
)
from stratus_sql.observability import Observer, current_trace_id, logger
from stratus_sql.retry import backoff, may_retry
from stratus_sql.statements import Statement

__all__ = ["PostgresBackend", "translate"]

_Connection = asyncpg.Connection | PoolConnectionProxy
T = TypeVar("T")

# Set by `Database.primary()`: reads in this context go to the primary, not the replica.
primary_only: ContextVar[bool] = ContextVar("stratus_primary_only", default=False)

_SET_ACTOR = (
    "SELECT set_config('stratus.actor_user_id', $1, true),"
    " set_config('stratus.actor_ip', $2, true),"
    " set_config('stratus.actor_user_agent', $3, true)"
)


class _PostgresExecutor(BaseExecutor):
    dialect = "postgres"

    @abc.abstractmethod
    def _connection(self) -> AbstractAsyncContextManager[_Connection]:
        """The connection a statement runs on."""

    async def _fetch(self, stmt: Statement, params: dict[str, Any]) -> Sequence[Row]:
        async with self._connection() as conn:
            with translate():
                records = await conn.fetch(stmt.text, *_args(stmt, params))
        # asyncpg Records index and iterate like tuples; the stubs do not call them Sequences.
        return cast(Sequence[Row], records)

    async def _fetch_row(self, stmt: Statement, params: dict[str, Any]) -> Row | None:
        rows = await self._fetch(stmt, params)
        if len(rows) > 1:
            raise UsageError(f":one statement {stmt.name!r} returned {len(rows)} rows")
        return rows[0] if rows else None

    async def _fetch_value(self, stmt: Statement, params: dict[str, Any]) -> Any:
        async with self._connection() as conn:
            with translate():
                return await conn.fetchval(stmt.text, *_args(stmt, params))

    async def _copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int:
        table, columns = stmt.copy_table or "", list(stmt.copy_columns)
        async with self._connection() as conn:
            with translate():
                # COPY FROM is refused where row-level security applies (a scoped
                # transaction; a login that is not the owner, or an owner under FORCE):
                # there, one INSERT of unnested column arrays, checked by the policies.
                if await conn.fetchval("SELECT row_security_active($1::regclass)", table):
                    insert = await _unnest_insert(conn, table, columns)
                    await conn.execute(insert, *(list(c) for c in zip(*rows, strict=True)))
                else:  # binary COPY: one round trip for the whole batch, all or nothing
                    await conn.copy_records_to_table(table, records=rows, columns=columns)
        return len(rows)

    async def _execute(self, stmt: Statement, params: dict[str, Any]) -> int:
        async with self._connection() as conn:
            with translate():
                status: str = await conn.execute(stmt.text, *_args(stmt, params))
        # Status tags end in the row count ("UPDATE 3", "INSERT 0 1"); others have none.
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0


class _PostgresTransaction(_PostgresExecutor):
    """An executor on one connection inside an open transaction."""

    def __init__(self, conn: _Connection, observer: Observer | None = None) -> None:
        self._conn = conn
        self._observer = observer

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        yield self._conn

    @asynccontextmanager
    async def transaction(self, actor: Actor | None = None) -> AsyncIterator[BaseExecutor]:
        if actor is not None:
            raise UsageError("an actor can only be set on the outermost transaction")
        # asyncpg nests a transaction started inside another as a SAVEPOINT.
        async with _atomic(self._conn):
            yield self


class PostgresBackend(_PostgresExecutor):
    """The pool: statements outside a transaction run on any free connection."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, replica: asyncpg.Pool | None = None
    ) -> None:
        self._pool = pool
        self._replica = replica
        self._replica_down = False
        self.settings = settings
        self._observer = Observer("postgres", settings.slow_query_ms)
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False

    async def listen(
        self, channel: str, on_notice: Callable[[str], None], cache: MemoryCache
    ) -> None:
        """Call `on_notice(payload)` for every NOTIFY on `channel`, on a connection of its own
        (to DATABASE_LISTEN_URL when set: LISTEN needs a session, which a transaction pooler
        does not keep).

        The connection is not taken from the pool (a pool of one would have none left). While
        it is down, notices can be missed, so `cache` is switched off and cleared; it comes
        back, empty, once the connection is remade (tried every second).
        """

        async def connect() -> None:
            conn = await asyncpg.connect(
                self.settings.listen_url or self.settings.database_url,
                timeout=self.settings.connect_timeout,
            )
            await conn.add_listener(channel, lambda _c, _p, _ch, payload: on_notice(payload))
            conn.add_termination_listener(lambda _c: lost())
            if self._listener is not None:  # back after an outage: forget what it missed
                cache.clear()
            self._listener = conn
            cache.active = True

        async def reconnect() -> None:
            while True:
                await asyncio.sleep(1.0)
                with contextlib.suppress(
                    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError
                ):
                    await connect()
                    return

        def lost() -> None:
            if self._closing:
                return
            cache.active = False
            cache.clear()
            if self._relisten is None or self._relisten.done():
                self._relisten = asyncio.get_running_loop().create_task(reconnect())

        with translate():
            await connect()

    @classmethod
    async def open(cls, settings: Settings) -> PostgresBackend:
        pool = await _create_pool(settings.database_url, settings, settings.pool_min_size)
        replica = None
        if settings.replica_url is not None:
            # Opened empty: a replica that is down must not keep the service from starting.
            replica = await _create_pool(settings.replica_url, settings, 0)
        backend = cls(pool, settings, replica)
        async with backend._connection() as conn:
            await warn_if_unprotected(conn)
        return backend

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        """A pooled connection, waited for at most DB_CONNECT_TIMEOUT."""
        try:
            conn = await self._pool.acquire(timeout=self.settings.pool_timeout)
        except TimeoutError:
            raise PoolExhausted(
                f"no free connection in the pool of {self.settings.pool_max_size} within "
                f"DB_POOL_TIMEOUT ({self.settings.pool_timeout} s)"
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Nothing was sent yet, so any statement may be retried, but only when the cause
            # can pass: a lost link or a server starting, not a bad password or a closed pool.
            where = _where(self.settings.database_url)
            error = DatabaseUnavailable(f"cannot connect to PostgreSQL at {where}: {exc}")
            if isinstance(exc, OSError) or (
                isinstance(exc, asyncpg.PostgresError) and _server_error(exc).retryable
            ):
                error.transient()
            raise error from exc
        try:
            yield conn
        except DatabaseUnavailable:
            # Never hand a connection that failed this way to the next caller.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            raise
        finally:
            await _release(self._pool, conn)

    async def _retrying(self, stmt: Statement, run: Callable[[], Awaitable[T]]) -> T:
        """Run one statement outside a transaction, retried up to DB_RETRY_ATTEMPTS times on
        a transient error, after a jittered backoff. A statement that writes is retried only
        when it cannot have been applied; when its connection was lost after it was sent,
        CommitUnknown is raised instead."""
        attempt = 0
        while True:
            try:
                return await run()
            except StratusError as exc:
                writes = not stmt.readonly
                if writes and exc.in_flight:
                    raise CommitUnknown(
                        f"{stmt.name}: the statement was cut off after it was sent (the "
                        "connection was lost, or it ran past DB_COMMAND_TIMEOUT); it may or "
                        "may not have been applied"
                    ) from exc
                if attempt >= self.settings.retry_attempts or not may_retry(exc, writes=writes):
                    raise
            attempt += 1
            if self._observer is not None:
                self._observer.retried(stmt.name)
            await asyncio.sleep(backoff(attempt))

    async def _fetch(self, stmt: Statement, params: dict[str, Any]) -> Sequence[Row]:
        if self._replica is not None and stmt.readonly and not primary_only.get():
            try:
                rows = await self._on_replica(self._replica, stmt, params)
            except DatabaseUnavailable as exc:
                self._replica_lost(exc)
            else:
                self._replica_down = False
                return rows
        run = super()._fetch
        return await self._retrying(stmt, lambda: run(stmt, params))

    async def _on_replica(
        self, replica: asyncpg.Pool, stmt: Statement, params: dict[str, Any]
    ) -> Sequence[Row]:
        """A `:one` / `:many` read on the replica; no retries there (the primary is next)."""
        where = _where(self.settings.replica_url or "")
        try:
            conn = await replica.acquire(timeout=self.settings.connect_timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"cannot connect to the replica at {where}") from exc
        try:
            with translate():
                records = await conn.fetch(stmt.text, *_args(stmt, params))
        except DatabaseUnavailable:
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            raise
        finally:
            await _release(replica, conn)
        return cast(Sequence[Row], records)

    def _replica_lost(self, exc: DatabaseUnavailable) -> None:
        """Log once per outage that reads fall back to the primary."""
        if not self._replica_down:
            self._replica_down = True
            logger.warning(
                "replica unavailable, reading from the primary: %s (%s)",
                exc,
                exc.__cause__,
                extra={"trace_id": current_trace_id(), "metrics": {}},
            )

    async def _fetch_value(self, stmt: Statement, params: dict[str, Any]) -> Any:
        run = super()._fetch_value
        return await self._retrying(stmt, lambda: run(stmt, params))

    async def _execute(self, stmt: Statement, params: dict[str, Any]) -> int:
        run = super()._execute
        return await self._retrying(stmt, lambda: run(stmt, params))

    async def _copy(self, stmt: Statement, rows: Sequence[Sequence[Any]]) -> int:
        run = super()._copy
        return await self._retrying(stmt, lambda: run(stmt, rows))

    def pool_sizes(self) -> tuple[int, int]:
        """(connections open, of which idle)."""
        return self._pool.get_size(), self._pool.get_idle_size()

    async def describe(self, stmt: Statement) -> list[str]:
        """Prepare `stmt` on the server; the names of its result columns."""
        async with self._connection() as conn:
            with translate():
                prepared = await conn.prepare(stmt.text)
            return [attribute.name for attribute in prepared.get_attributes()]

    async def close(self) -> None:
        self._closing = True
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

    @asynccontextmanager
    async def transaction(
        self, actor: Actor | None = None, *, scoped: bool = False
    ) -> AsyncIterator[BaseExecutor]:
        async with (
            self._connection() as conn,
            _atomic(conn, actor, scoped=scoped, outermost=True),
        ):
            yield _PostgresTransaction(conn, self._observer)


async def _release(pool: asyncpg.Pool, conn: PoolConnectionProxy) -> None:
    """Give the connection back to the pool. After a timed-out statement asyncpg first waits
    for the server to acknowledge the cancel; a server that hangs never does, and the wait
    ends in TimeoutError (or a lost link). The statement's own error is the one the caller
    must see, so such a connection is closed instead of reported."""
    try:
        await pool.release(conn)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()


async def _create_pool(url: str, settings: Settings, min_size: int) -> asyncpg.Pool:
    try:
        return await asyncio.wait_for(
            asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=settings.pool_max_size,
                command_timeout=settings.command_timeout,
                statement_cache_size=settings.statement_cache_size,
                max_inactive_connection_lifetime=settings.max_inactive_lifetime,
                timeout=settings.connect_timeout,
                init=_init_connection,
                reset=_keep_session,
            ),
            timeout=settings.connect_timeout + 1,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {_where(url)}: {type(exc).__name__}: {exc}"
        ) from exc


@asynccontextmanager
async def _atomic(
    conn: _Connection,
    actor: Actor | None = None,
    *,
    scoped: bool = False,
    outermost: bool = False,
) -> AsyncIterator[None]:
    """Run the block in a transaction (a savepoint when one is open): commit or roll back.

    A connection lost while the outermost COMMIT was in flight raises CommitUnknown: the
    server may have committed before the link went down.
    """
    tx = conn.transaction()
    with translate():
        await tx.start()
    try:
        if actor is not None:
            with translate():
                await conn.execute(_SET_ACTOR, *_actor_args(actor))
        trace_id = current_trace_id()
        if trace_id is not None:  # shows in pg_stat_activity while the transaction runs
            with translate():
                await conn.execute(
                    "SELECT set_config('application_name', $1, true)", f"stratus:{trace_id}"
                )
        if scoped:
            await _scope(conn, actor)
        yield
        try:
            with translate():
                await tx.commit()
        except StratusError as exc:
            # Lost, or timed out (the cancel may arrive after the commit is durable).
            if outermost and (exc.in_flight or isinstance(exc, QueryTimeout)):
                raise CommitUnknown(
                    "the connection was lost or timed out while COMMIT was in flight: the "
                    "transaction may or may not have been committed"
                ) from exc
            raise
    except BaseException:
        try:
            await tx.rollback()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            # The block's own error is the one to report; a connection that cannot even
            # roll back (or whose COMMIT failed midway) is closed so the pool never hands
            # it out again (a connection already lost has left the pool by itself).
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
        raise


_unnest_inserts: dict[tuple[str, tuple[str, ...]], str] = {}


async def _unnest_insert(conn: _Connection, table: str, columns: list[str]) -> str:
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


async def _scope(conn: _Connection, actor: Actor | None) -> None:
    """Run the rest of the transaction as stratus_scoped, under row-level security.

    The actor's role is read first, while still privileged: an admin may read every row.
    """
    with translate():
        if actor is not None and actor.user_id is not None:
            role = await conn.fetchval(
                "SELECT role::text FROM users WHERE user_id = $1", actor.user_id
            )
            if role == "admin":
                await conn.execute("SELECT set_config('stratus.actor_is_admin', 'on', true)")
        await conn.execute("SET LOCAL ROLE stratus_scoped")


async def warn_if_unprotected(conn: _Connection) -> None:
    """Warn, once a process, when the login role bypasses row-level security."""
    global _warned
    if _warned:
        return
    with translate():
        bypasses = await conn.fetchval(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
    if bypasses:
        _warned = True
        warnings.warn(
            "stratus_sql is connected as a superuser or a role with BYPASSRLS: row-level "
            "security protects nothing outside scoped transactions (see the README on roles)",
            UnprotectedRoleWarning,
            stacklevel=4,
        )


class UnprotectedRoleWarning(UserWarning):
    """The login role bypasses row-level security."""


_warned = False


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query (RESET ALL, UNLISTEN *, ...): a round
    trip per call for state stratus_sql never leaves behind, since the actor settings and
    everything else it sets are transaction-local. asyncpg still rolls back an open
    transaction before this is called."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb's binary format is a version byte (1) followed by the JSON text.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
    )
    await conn.set_type_codec(
        "json", schema="pg_catalog", format="binary", encoder=orjson.dumps, decoder=orjson.loads
    )


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


# asyncpg sends None as SQL NULL without calling the codec; JSON null must reach the codec.
_JSON_NULL = orjson.Fragment(b"null")


def _args(stmt: Statement, params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (_JSON_NULL if v.value is None else v.value) if isinstance(v, Json) else v
        for v in stmt.positional(params)
    )


def _actor_args(actor: Actor) -> tuple[str, str, str]:
    user = "" if actor.user_id is None else str(actor.user_id)
    return user, actor.ip_address or "", actor.user_agent or ""


def _where(url: str) -> str:
    """host:port/database of a URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


@contextmanager
def translate() -> Iterator[None]:
    """Re-raise asyncpg and socket errors as stratus_sql errors, chaining the original and
    marking the transient ones (see `stratus_sql.retry`)."""
    try:
        yield
    except StratusError:
        raise
    except asyncpg.PostgresError as exc:
        raise _server_error(exc) from exc
    except asyncpg.InterfaceError as exc:
        if "another operation is in progress" in str(exc):
            raise UsageError(
                "statements ran concurrently on one connection: inside a transaction, "
                "await each statement before starting the next"
            ) from exc
        # asyncpg checks the connection before sending: "connection is closed" means the
        # statement never left this process.
        raise DatabaseUnavailable(f"PostgreSQL connection failed: {exc}").transient(
            in_flight="connection is closed" not in str(exc)
        ) from exc
    except TimeoutError as exc:
        # The statement reached the server and was cancelled: a write may have been applied.
        timeout = QueryTimeout("the statement ran longer than DB_COMMAND_TIMEOUT")
        timeout.in_flight = True
        raise timeout from exc
    except asyncpg.InternalClientError as exc:
        if "cannot switch to state" in str(exc):
            # The server's farewell (e.g. 57P01 after pg_terminate_backend) reached an idle
            # connection just before a statement would have been sent on it.
            raise DatabaseUnavailable(f"PostgreSQL connection unusable: {exc}").transient() from exc
        raise DatabaseError(f"asyncpg failed: {exc}") from exc
    except OSError as exc:
        raise DatabaseUnavailable(f"PostgreSQL connection failed: {exc}").transient(
            in_flight=True
        ) from exc


def _server_error(exc: asyncpg.PostgresError) -> StratusError:
    state: str = getattr(exc, "sqlstate", "") or ""
    constraint: str | None = getattr(exc, "constraint_name", None)
    message = getattr(exc, "message", None) or str(exc)
    if state == "23505":
        return AlreadyExists(f"already exists: {message}", constraint=constraint)
    if state == "23503":
        return NotFound(f"a referenced row does not exist ({constraint})")
    if state == "23514" and "no partition of relation" in message:
        return DatabaseError(
            f"{message}: run `stratus-sql maintain` to create the month's partition"
        )
    if state.startswith("22") or state in ("23502", "23514"):
        return InvalidInput(f"rejected by the database: {message}")
    if state in ("40001", "40P01"):  # the server rolled the transaction back
        return Conflict(f"concurrent update conflict: {message}").transient()
    if state == "55P03":  # lock_timeout: retrying at once would most likely wait again
        return Conflict(f"concurrent update conflict: {message}")
    if state.startswith("08") or state in ("57P01", "57P02", "57P03"):
        # The session ended (terminated, server shutting down or starting, link lost):
        # whatever the statement did is rolled back unless it had already committed.
        return DatabaseUnavailable(f"PostgreSQL unavailable: {message}").transient(in_flight=True)
    if state == "53300":  # too many connections: refused before anything ran
        return DatabaseUnavailable(f"PostgreSQL unavailable: {message}").transient()
    if state.startswith("28") or state == "3D000":
        return DatabaseUnavailable(f"PostgreSQL unavailable: {message}")
    if state == "25P02":
        return UsageError(f"the transaction was aborted by an earlier error: {message}")
    if state == "57014":
        return QueryTimeout(f"the statement was cancelled: {message}")
    if state == "42P01":  # undefined_table
        return DatabaseError(f"[{state}] {message}: {SCHEMA_MISSING}")
    return DatabaseError(f"[{state}] {message}")
