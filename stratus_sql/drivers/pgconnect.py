"""Opening asyncpg pools the way stratus_sql uses them: orjson codecs for json and jsonb, no
reset query on release, a warning when the login role bypasses row-level security.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from stratus_sql.config import Settings
from stratus_sql.drivers.pgerrors import DRIVER_ERRORS, may_pass, translated, where
from stratus_sql.errors import DatabaseUnavailable

__all__ = [
    "UnprotectedRoleWarning",
    "create_pool",
    "init_connection",
    "keep_session",
    "warn_if_unprotected",
]


async def create_pool(url: str, settings: Settings, min_size: int) -> asyncpg.Pool:
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
                init=init_connection,
                reset=keep_session,
            ),
            timeout=settings.connect_timeout + 1,
        )
    except DRIVER_ERRORS as exc:
        error = DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {where(url)}: {type(exc).__name__}: {exc}"
        )
        if may_pass(exc):  # nothing was sent: trying again later may succeed
            error.transient()
        raise error from exc


async def warn_if_unprotected(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Warn, once a process, when the login role bypasses row-level security."""
    global _warned
    if _warned:
        return
    try:
        bypasses = await conn.fetchval(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
    except DRIVER_ERRORS as exc:
        raise translated(exc) from exc
    if bypasses:
        _warned = True
        warnings.warn(
            "stratus_sql is connected as a superuser or a role with BYPASSRLS: row-level "
            "security protects nothing outside scoped transactions (see the README on roles)",
            UnprotectedRoleWarning,
            stacklevel=5,
        )


class UnprotectedRoleWarning(UserWarning):
    """The login role bypasses row-level security."""


_warned = False


async def keep_session(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query (RESET ALL, UNLISTEN *, ...): a round
    trip per call for state stratus_sql never leaves behind, since the actor settings and
    everything else it sets are transaction-local. asyncpg still rolls back an open
    transaction before this is called."""


async def init_connection(conn: asyncpg.Connection) -> None:
    """orjson codecs for json and jsonb (binary: jsonb is a version byte, then the text)."""
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
