"""What the app reads, as whom: the caller of a request, their dashboards and series, and
what it remembers for the database's outages.

On PostgreSQL every read runs in a transaction scoped to the caller by row-level security,
so a handler's mistake still cannot show another user's rows; on SQLite, which has none, the
ownership checks here are all there is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar
from uuid import UUID

from fastapi import Request

from stratus_sql.database import Database
from stratus_sql.dialects import base_chain
from stratus_sql.engine import Executor
from stratus_sql.errors import DatabaseUnavailable, NotFound, QueryTimeout, UsageError
from stratus_sql.queries import dashboards, metrics
from stratus_sql.records import Dashboard, StaleableSeries, User
from stratus_sql.web.auth import Caller, Remembered, identify, presented_key

__all__ = ["AppState", "Forbidden", "NotSignedIn", "Period"]

T = TypeVar("T")
Period = Literal["24h", "7d", "30d"]


class NotSignedIn(Exception):
    """A request without a valid key."""


class Forbidden(Exception):
    """A request for what the caller's role may not read."""


class AppState:
    """The app's database and what it remembers for the database's outages."""

    def __init__(self, url: str | None, db: Database | None) -> None:
        self.url = url
        self.db: Database | None = db
        self.keys: Remembered[bytes, User] = Remembered(10_000)
        self.boards: Remembered[tuple[UUID, UUID], Dashboard] = Remembered(10_000)

    @property
    def database(self) -> Database:
        if self.db is None:
            raise UsageError("the app's database is not open: run it with its lifespan")
        return self.db

    @property
    def scoped(self) -> bool:
        """Whether the database enforces row-level security (PostgreSQL)."""
        return base_chain(self.database.dialect)[-1].name == "postgres"

    async def caller(self, request: Request) -> Caller:
        found = await identify(self.database, presented_key(request), self.keys)
        if found is None:
            raise NotSignedIn
        return found

    async def as_caller(self, caller: Caller, fn: Callable[[Executor], Awaitable[T]]) -> T:
        return await self.database.run_transaction(fn, actor=caller.actor, scoped=self.scoped)

    async def dashboards_of(self, caller: Caller) -> list[Dashboard]:
        if caller.admin:
            return await self.as_caller(caller, dashboards.list_all_dashboards)
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
            kept = self.boards.get(key)
            if kept is None:
                raise
            return kept
        if found is None or not (caller.admin or found.user_id == caller.user.user_id):
            self.boards.forget(key)
            raise NotFound(f"no dashboard {dashboard_id}")
        self.boards.keep(key, found)
        return found

    async def series(
        self, caller: Caller, board: Dashboard | None, period: Period
    ) -> StaleableSeries:
        """A dashboard's series, or the organisation's (admins only) when `board` is None."""
        if board is None and not caller.admin:
            raise Forbidden
        return await metrics.dashboard_series(
            self.database,
            period=period,
            dashboard_id=None if board is None else board.dashboard_id,
            allow_stale=True,
            actor=caller.actor if self.scoped else None,
        )
