"""asyncpg and socket errors as stratus_sql errors, keyed by SQLSTATE.

Each translated error chains the original, carries `sqlstate` and `constraint`, and is marked
transient / in flight where that applies (see `stratus_sql.retry`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import asyncpg
from asyncpg.exceptions import TargetServerAttributeNotMatched

from stratus_sql.errors import (
    SCHEMA_MISSING,
    AlreadyExists,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    QueryTimeout,
    StratusError,
    UsageError,
)

__all__ = ["DRIVER_ERRORS", "may_pass", "server_error", "translated", "where"]

# Everything asyncpg (or the socket under it) raises that `translated` turns into ours.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,  # TimeoutError included
)


_PORT = re.compile(r":\d+$")


def where(url: str) -> str:
    """host:port/database of a URL, never its password; every host of a multi-host URL
    (`postgresql://h1:p1,h2:p2/db`), comma-separated."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2].split(",")
    shown = ",".join(h if _PORT.search(h) else f"{h or 'localhost'}:5432" for h in hosts)
    return f"{shown}{parts.path}"


def may_pass(exc: BaseException) -> bool:
    """Whether a failure to connect may pass if tried again: a lost link, a server starting,
    or no host of a multi-host URL matching target_session_attrs yet (a standby being
    promoted); not a bad password, a missing database or a closed pool."""
    if isinstance(exc, OSError | TargetServerAttributeNotMatched):  # TimeoutError included
        return True
    return isinstance(exc, asyncpg.PostgresError) and server_error(exc).retryable


def translated(exc: BaseException) -> StratusError:
    """The stratus_sql error for one of `DRIVER_ERRORS`."""
    if isinstance(exc, asyncpg.PostgresError):
        return server_error(exc)
    if isinstance(exc, asyncpg.InterfaceError):
        if "another operation is in progress" in str(exc):
            return UsageError(
                "statements ran concurrently on one connection: inside a transaction, "
                "await each statement before starting the next"
            )
        # asyncpg checks the connection before sending: "connection is closed" means the
        # statement never left this process.
        return DatabaseUnavailable(f"PostgreSQL connection failed: {exc}").transient(
            in_flight="connection is closed" not in str(exc)
        )
    if isinstance(exc, TimeoutError):
        # The statement reached the server and was cancelled: a write may have been applied.
        timeout = QueryTimeout("the statement ran longer than DB_COMMAND_TIMEOUT")
        timeout.in_flight = True
        return timeout
    if isinstance(exc, TargetServerAttributeNotMatched):
        # No host of a multi-host URL is what target_session_attrs asks for yet (during a
        # failover, the standby is not promoted yet): nothing was sent.
        return DatabaseUnavailable(f"no PostgreSQL host matches: {exc}").transient()
    if isinstance(exc, asyncpg.InternalClientError):
        if "cannot switch to state" in str(exc):
            # The server's farewell (e.g. 57P01 after pg_terminate_backend) reached an idle
            # connection just before a statement would have been sent on it.
            return DatabaseUnavailable(f"PostgreSQL connection unusable: {exc}").transient()
        return DatabaseError(f"asyncpg failed: {exc}")
    if isinstance(exc, OSError):
        return DatabaseUnavailable(f"PostgreSQL connection failed: {exc}").transient(in_flight=True)
    raise TypeError(f"not a driver error: {exc!r}")


def server_error(exc: asyncpg.PostgresError) -> StratusError:
    state: str = getattr(exc, "sqlstate", "") or ""
    constraint: str | None = getattr(exc, "constraint_name", None)
    message = getattr(exc, "message", None) or str(exc)
    return _by_state(state, message, constraint).caused_by(state or None, constraint)


def _by_state(state: str, message: str, constraint: str | None) -> StratusError:
    if state == "23505":
        return AlreadyExists(f"already exists: {message}", constraint=constraint)
    if state == "23503":
        return NotFound(f"a referenced row does not exist: {message}")
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
    if state == "25006":
        # A read-only transaction refused a write: the server is a standby, or a primary
        # being demoted or promoted by a failover. Nothing was applied; another
        # connection (one that `target_session_attrs=read-write` chose) may succeed.
        return DatabaseUnavailable(f"PostgreSQL is read-only: {message}").transient()
    if state == "53300":  # too many connections: refused before anything ran
        return DatabaseUnavailable(f"PostgreSQL unavailable: {message}").transient()
    if state.startswith("28") or state == "3D000":
        return DatabaseUnavailable(f"PostgreSQL unavailable: {message}")
    if state == "25P02":
        return UsageError(f"the transaction was aborted by an earlier error: {message}")
    if state == "57014":
        return QueryTimeout(f"the statement was cancelled: {message}")
    if state == "42P01":  # undefined_table
        return DatabaseError(f"{message}: {SCHEMA_MISSING}")
    return DatabaseError(message)
