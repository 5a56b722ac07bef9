"""Multi-host URLs and read-only servers, on each PostgreSQL leg's server: the pieces a
failover relies on, without one (tests/test_failover.py has the whole failover)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import stratus_sql
import stratus_sql.migrations
from stratus_sql.drivers.pgerrors import where
from stratus_sql.queries import users
from tests.servers import free_port


def with_dead_host_first(url: str, attrs: str = "read-write") -> str:
    """The same database behind a first host where nothing listens."""
    parts = urlsplit(url)
    credentials, at, host = parts.netloc.rpartition("@")
    netloc = f"{credentials}{at}127.0.0.1:{free_port()},{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=f"target_session_attrs={attrs}"))


def test_where_names_every_host_and_never_the_password() -> None:
    url = "postgresql://ana:segredo@h1:5433,h2,[::1]:6/stratus?target_session_attrs=read-write"
    assert where(url) == "h1:5433,h2:5432,[::1]:6/stratus"


def test_a_multi_host_url_with_an_unreadable_port_is_refused_before_connecting() -> None:
    with pytest.raises(stratus_sql.ConfigError, match="cannot read the host 'h2:porta'"):
        stratus_sql.apply_migrations("postgresql://ana@127.0.0.1:1,h2:porta/stratus")


async def test_a_multi_host_url_migrates_and_connects_past_a_dead_host(
    new_pg_database: Callable[[], str],
) -> None:
    url = with_dead_host_first(new_pg_database())
    assert stratus_sql.apply_migrations(url)  # yoyo's psycopg, given libpq's host list
    assert stratus_sql.migrations.pending_migrations(url) == []
    async with await stratus_sql.connect(url) as db:
        made = await users.create_user(
            db, name="Ana", email=f"m.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
        )
        assert await users.get_user(db, made.user_id) == made
        assert db.memory_cache is not None
        assert db.memory_cache.active


async def test_a_read_only_server_refuses_writes_as_unavailable_never_as_a_bad_query(
    new_pg_database: Callable[[], str],
) -> None:
    """A server that went read-only under a connected pool (a primary being demoted) refuses
    a write with SQLSTATE 25006: DatabaseUnavailable, retryable, nothing applied. With
    target_session_attrs=read-write, no host matches: DatabaseUnavailable, retryable, as a
    refused host is."""
    url = new_pg_database()
    stratus_sql.apply_migrations(url)
    name = urlsplit(url).path.lstrip("/")
    settings = stratus_sql.Settings.load(retry_attempts=0, pool_min_size=1, pool_max_size=1)
    admin = await asyncpg.connect(url)
    try:
        # As a demoted primary is: its sessions' transactions are read-only.
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        async with await stratus_sql.connect(url, settings=settings) as db:
            with pytest.raises(stratus_sql.DatabaseUnavailable) as refused:
                await users.create_user(db, name="Ana", email="ro@x.com", role="pilot")
        assert refused.value.retryable
        assert not refused.value.in_flight
        assert refused.value.sqlstate == "25006"
        for where_to in (with_dead_host_first(url), f"{url}?target_session_attrs=read-write"):
            # A refused first host, or (the second URL) no host that is read-write.
            with pytest.raises(stratus_sql.DatabaseUnavailable) as unmatched:
                await stratus_sql.connect(where_to, settings=settings)
            assert unmatched.value.retryable
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()
    async with await stratus_sql.connect(url, settings=settings) as db:
        assert await users.get_user_by_email(db, "ro@x.com") is None
