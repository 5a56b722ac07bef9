"""A network that misbehaves, made by a small TCP proxy of our own between the pool and the
server: an address where nothing answers, a server that accepts and then stays silent, and a
link that goes silent under a connected Database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

import stratus_sql
from stratus_sql.queries import metrics, users


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server until `silent` is set; from then on it keeps
    every connection open and passes nothing in either direction. With `silent` set from the
    start, it accepts connections and never answers."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.silent = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Close every connection it carries (new ones get the same treatment as before)."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.append(client_w)
        if self.silent:
            await client_r.read()  # until the client gives up
            return
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        self._writers.append(server_w)
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
                    await writer.drain()
        writer.close()


def _via(url: str, port: int, password: str | None = None) -> str:
    parts = urlsplit(url)
    user = parts.username or "root"
    credentials = f"{user}:{password}" if password else user
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(pg_url)
    made = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


async def test_connect_where_nothing_answers_fails_fast_naming_the_address(
    pg_url: str,
) -> None:
    port = _closed_port()
    url = _via(pg_url, port, password="segredo")
    settings = stratus_sql.Settings.load(connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(stratus_sql.DatabaseUnavailable) as raised:
        await stratus_sql.connect(url, settings=settings)
    assert time.monotonic() - started < 2
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "segredo" not in str(raised.value)


async def test_connect_to_a_server_that_stays_silent_times_out_in_time(
    proxy: TcpProxy, pg_url: str
) -> None:
    proxy.silent = True
    url = _via(pg_url, proxy.port, password="segredo")
    settings = stratus_sql.Settings.load(connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(stratus_sql.DatabaseUnavailable) as raised:
        await stratus_sql.connect(url, settings=settings)
    assert time.monotonic() - started < 1 + 1
    assert f"127.0.0.1:{proxy.port}" in str(raised.value)
    assert "segredo" not in str(raised.value)


async def test_through_the_proxy_calls_work_and_close_returns_when_the_link_goes_silent(
    proxy: TcpProxy, pg_url: str
) -> None:
    url = _via(pg_url, proxy.port)
    settings = stratus_sql.Settings.load(
        pool_min_size=2, pool_max_size=2, command_timeout=1, connect_timeout=1
    )
    db = await stratus_sql.connect(url, settings=settings)
    user = await users.create_user(db, name="Ana", email=f"{time.time_ns()}@x.com", role="pilot")
    assert await users.get_user(db, user.user_id) == user
    proxy.silent = True
    with pytest.raises(stratus_sql.QueryTimeout):
        await users.get_user(db, user.user_id)
    started = time.monotonic()
    await db.close()
    assert time.monotonic() - started < 1 + 1


async def test_allow_stale_serves_the_last_good_series_only_while_the_database_is_down(
    proxy: TcpProxy, pg_url: str
) -> None:
    url = _via(pg_url, proxy.port)
    # One retry: the fallback is under test, not how long the retries wait.
    settings = stratus_sql.Settings.load(
        pool_min_size=1, pool_max_size=2, command_timeout=0.5, pool_timeout=1, retry_attempts=1
    )
    db = await stratus_sql.connect(url, settings=settings)
    down = (stratus_sql.QueryTimeout, stratus_sql.DatabaseUnavailable)
    try:
        user = await users.create_user(
            db, name="Ana", email=f"{time.time_ns()}@x.com", role="pilot"
        )
        await metrics.record_metric(
            db,
            user_id=user.user_id,
            ia_efficiency=0.9,
            model_accuracy=0.95,
            processing_time_ms=120.0,
            memory_usage_mb=256.0,
            error_rate=0.1,
        )
        fresh = await metrics.dashboard_series(db, user_id=user.user_id, allow_stale=True)
        assert not fresh.stale
        assert fresh.age_seconds == 0
        assert sum(b.samples for b in fresh.buckets) == 1
        plain = await metrics.dashboard_series(db, user_id=user.user_id)
        assert [b.samples for b in fresh.buckets] == [b.samples for b in plain]

        proxy.silent = True
        stale = await metrics.dashboard_series(db, user_id=user.user_id, allow_stale=True)
        assert stale.stale
        assert stale.age_seconds > 0
        assert stale.buckets == fresh.buckets
        # Other arguments have no good result to fall back on; without allow_stale the
        # error is never hidden (a timeout, or the pool's connections all stuck on it).
        with pytest.raises(down):
            await metrics.dashboard_series(db, user_id=user.user_id, period="7d", allow_stale=True)
        with pytest.raises(down):
            await metrics.dashboard_series(db, user_id=user.user_id)
    finally:
        await db.close()


async def test_a_statement_that_must_connect_to_a_silent_server_waits_at_most_the_pool_timeout(
    proxy: TcpProxy, pg_url: str
) -> None:
    # The pool's one connection is cut and the server goes silent: the next statement has a
    # free slot and must connect it. The connect timeout is long; the pool timeout bounds
    # the wait of any statement.
    url = _via(pg_url, proxy.port)
    settings = stratus_sql.Settings.load(
        pool_min_size=1, pool_max_size=1, pool_timeout=1, connect_timeout=30, retry_attempts=0
    )
    db = await stratus_sql.connect(url, settings=settings)
    try:
        proxy.silent = True
        proxy.cut()
        for _ in range(100):  # until the pool has seen its connection close
            if db.pool_sizes()[1] == 0:
                break
            await asyncio.sleep(0.02)
        assert db.pool_sizes()[1] == 0
        started = time.monotonic()
        with pytest.raises(stratus_sql.DatabaseUnavailable) as raised:
            await users.get_user(db, uuid.uuid4())
        # A slot was free: what timed out is connecting it, not waiting for the pool.
        assert not isinstance(raised.value, stratus_sql.PoolExhausted)
        assert "cannot connect" in str(raised.value)
        # One try (retries are off here; each would be bounded alike): the pool timeout and
        # the time asyncpg takes to give the abandoned connect up, far below the 30 s connect
        # timeout.
        assert time.monotonic() - started < 2 * (1 + 1)
    finally:
        await db.close()
