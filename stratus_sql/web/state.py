"""What the app reads, as whom: the caller of a request, their dashboards and series, and
what it keeps for the database's outages.

On PostgreSQL every read runs in a transaction scoped to the caller by row-level security,
so a handler's mistake still cannot show another user's rows; on SQLite, which has none, the
ownership checks here are all there is (and reads run outside a transaction, so they never
wait for SQLite's writer lock).

A caller recognised from memory while the database was unavailable (`Caller.remembered`) is
answered only from what was kept: the boards they read and the series they were shown,
marked stale. Such a caller never gets a fresh read, so a key revoked during an outage
cannot see data written after it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar
from uuid import UUID

from fastapi import Request

from stratus_sql.database import Database, Health, connect
from stratus_sql.dialects import base_chain
from stratus_sql.engine import Executor
from stratus_sql.errors import DatabaseUnavailable, NotFound, QueryTimeout
from stratus_sql.queries import dashboards, metrics
from stratus_sql.records import Dashboard, MetricBucket, StaleableSeries
from stratus_sql.web.auth import (
    SESSION_SECONDS,
    Caller,
    Remembered,
    Sessions,
    Verified,
    identify,
)

__all__ = ["AppState", "Forbidden", "NotSignedIn", "Period"]

T = TypeVar("T")
Period = Literal["24h", "7d", "30d"]
KEPT = 10_000  # boards, series and credentials kept for outages, each
HEALTH_SECONDS = 5.0  # a health answer is reused this long
HEALTH_BUDGET = 5.0  # seconds a health check may take before it counts as unhealthy
ADMIN_LIST_LIMIT = 10_000


class NotSignedIn(Exception):
    """A request without a valid key."""


class Forbidden(Exception):
    """A request for what the caller's role may not read."""


class AppState:
    """The app's database, its sessions, and what it keeps for the database's outages."""

    def __init__(self, url: str | None, db: Database | None, reuse_seconds: float = 0.0) -> None:
        self.url = url
        self.reuse_seconds = reuse_seconds
        self._db = db
        self._connecting = asyncio.Lock()
        secret = None if db is None else db.settings.session_secret
        self.sessions = Sessions(secrets.token_bytes(32) if secret is None else secret.encode())
        self.keys: Remembered[bytes, Verified] = Remembered(KEPT)
        self.boards: Remembered[tuple[UUID, UUID], Dashboard] = Remembered(KEPT)
        self.shown: Remembered[tuple[UUID, UUID | None, str], list[MetricBucket]] = Remembered(KEPT)
        self._reading: dict[
            tuple[UUID, UUID, str], asyncio.Future[tuple[Dashboard, StaleableSeries]]
        ] = {}
        self._health: tuple[float, Health] | None = None
        self._asking_health = asyncio.Lock()

    async def database(self) -> Database:
        """The Database, connected on first need: the app starts, and answers 503, while
        the database is down."""
        if self._db is None:
            async with self._connecting:
                if self._db is None:
                    self._db = await connect(self.url)
                    secret = self._db.settings.session_secret
                    if secret is not None:
                        self.sessions = Sessions(secret.encode())
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def health(self) -> Health:
        """The database's health, asked at most once per HEALTH_SECONDS (one request asks;
        those arriving meanwhile wait for its answer)."""
        async with self._asking_health:
            if self._health is None or time.monotonic() - self._health[0] > HEALTH_SECONDS:
                try:
                    db = await self.database()
                    found = await asyncio.wait_for(db.health(), HEALTH_BUDGET)
                except (DatabaseUnavailable, TimeoutError) as exc:
                    found = Health(False, None, None, 0, 0, [], str(exc) or "no answer in time")
                self._health = (time.monotonic(), found)
            return self._health[1]

    @property
    def scoped(self) -> bool:
        """Whether the database enforces row-level security (PostgreSQL)."""
        return self._db is not None and base_chain(self._db.dialect)[-1].name == "postgres"

    async def caller(self, request: Request) -> Caller:
        found = await identify(
            await self.database(), request, self.sessions, self.keys, self.reuse_seconds
        )
        if found is None:
            raise NotSignedIn
        return found

    async def as_caller(self, caller: Caller, fn: Callable[[Executor], Awaitable[T]]) -> T:
        if caller.remembered:
            raise DatabaseUnavailable("the database could not confirm the caller's key")
        db = await self.database()
        if not self.scoped:
            return await fn(db)
        return await db.run_transaction(fn, actor=caller.actor, scoped=True)

    async def dashboards_of(self, caller: Caller) -> list[Dashboard]:
        if caller.admin:
            return await self.as_caller(
                caller, lambda tx: dashboards.list_all_dashboards(tx, limit=ADMIN_LIST_LIMIT)
            )
        uid = caller.user.user_id
        return await self.as_caller(caller, lambda tx: dashboards.list_dashboards(tx, uid))

    async def board(self, caller: Caller, dashboard_id: UUID) -> Dashboard:
        """The dashboard, when the caller may read it; else NotFound (whether it exists or
        is someone else's)."""
        key = (caller.user.user_id, dashboard_id)
        try:
            found = await self.as_caller(
                caller, lambda tx: dashboards.get_dashboard(tx, dashboard_id)
            )
        except (DatabaseUnavailable, QueryTimeout):
            kept = self.boards.get(key, SESSION_SECONDS)
            if kept is None or not _may_read(caller, kept[1]):
                raise
            return kept[1]
        if found is None or not _may_read(caller, found):
            self.boards.forget(key)
            raise NotFound(f"no dashboard {dashboard_id}")
        self.boards.keep(key, found)
        return found

    async def view(
        self, caller: Caller, dashboard_id: UUID, period: Period
    ) -> tuple[Dashboard, StaleableSeries]:
        """A dashboard and its series. Within `reuse_seconds` of computing them for this
        caller, the same are given again (`age_seconds` says how old), without asking the
        database: many viewers of one dashboard cost one read a period."""
        key = (caller.user.user_id, dashboard_id, period)
        if self.reuse_seconds and not caller.remembered:
            board = self.boards.get(key[:2], self.reuse_seconds)
            shown = self.shown.get(key, self.reuse_seconds)
            if board is not None and shown is not None and _may_read(caller, board[1]):
                series = StaleableSeries(buckets=shown[1], stale=False, age_seconds=shown[0])
                return board[1], series
        if not self.reuse_seconds or caller.remembered:
            return await self._read_view(caller, dashboard_id, period)
        # One read per key at a time: requests arriving meanwhile wait for its answer, so
        # the end of a reuse period does not send every viewer to the database at once.
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read_view(caller, dashboard_id, period))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read(key, done))
        return await asyncio.shield(reading)

    def _read(
        self, key: tuple[UUID, UUID, str], done: asyncio.Future[tuple[Dashboard, StaleableSeries]]
    ) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: raised to whoever awaited it, if anyone still does

    async def _read_view(
        self, caller: Caller, dashboard_id: UUID, period: Period
    ) -> tuple[Dashboard, StaleableSeries]:
        found = await self.board(caller, dashboard_id)
        return found, await self.series(caller, found, period)

    async def series(
        self, caller: Caller, board: Dashboard | None, period: Period
    ) -> StaleableSeries:
        """A dashboard's series, or the organisation's (admins only) when `board` is None;
        within `reuse_seconds` of computing it for this caller, the same one again."""
        if board is None and not caller.admin:
            raise Forbidden
        board_id = None if board is None else board.dashboard_id
        key = (caller.user.user_id, board_id, period)
        recent = self.shown.get(key, self.reuse_seconds) if self.reuse_seconds else None
        if recent is not None and not caller.remembered:
            return StaleableSeries(buckets=recent[1], stale=False, age_seconds=recent[0])
        if caller.remembered:
            kept = self.shown.get(key, SESSION_SECONDS)
            if kept is None:
                raise DatabaseUnavailable("no series of this caller was kept")
            return StaleableSeries(buckets=kept[1], stale=True, age_seconds=kept[0])
        started = time.monotonic()  # what is kept is as old as the read's start
        series = await metrics.dashboard_series(
            await self.database(),
            period=period,
            dashboard_id=board_id,
            allow_stale=True,
            actor=caller.actor if self.scoped else None,
        )
        if not series.stale:
            self.shown.keep(key, series.buckets, at=started)
        return series


def _may_read(caller: Caller, board: Dashboard) -> bool:
    """Whether the caller, as they are now, may read the dashboard (also one kept earlier,
    when they may have been an admin)."""
    return caller.admin or board.user_id == caller.user.user_id
