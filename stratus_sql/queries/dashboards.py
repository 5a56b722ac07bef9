"""Dashboards: a user's named AI monitoring boards; a name is unique per user."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from stratus_sql.engine import Executor
from stratus_sql.errors import DatabaseError, NotFound
from stratus_sql.ids import uuid7
from stratus_sql.queries._input import Input, NoNul, Unpadded, int_arg, text, uuid_arg, validate
from stratus_sql.records import Dashboard
from stratus_sql.sqlfiles import load_queries

__all__ = [
    "create_dashboard",
    "delete_dashboard",
    "get_dashboard",
    "get_dashboard_by_name",
    "list_all_dashboards",
    "list_dashboards",
    "rename_dashboard",
]

STATEMENTS = load_queries("dashboards")


class _Name(Input):
    name: Annotated[str, text(200), NoNul, Unpadded]


async def create_dashboard(db: Executor, *, user_id: UUID | str, name: str) -> Dashboard:
    """Create a dashboard. AlreadyExists if the user has one of that name; NotFound if the
    user does not exist."""
    uid = uuid_arg(user_id, "user_id")
    wanted = validate(_Name, name=name).name
    dashboard = await db.fetch_one(
        Dashboard, STATEMENTS.create_dashboard, dashboard_id=uuid7(), user_id=uid, name=wanted
    )
    if dashboard is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError("create_dashboard returned no row")
    return dashboard


async def get_dashboard(db: Executor, dashboard_id: UUID | str) -> Dashboard | None:
    """The dashboard with this id, or None."""
    did = uuid_arg(dashboard_id, "dashboard_id")
    return await db.fetch_one(Dashboard, STATEMENTS.get_dashboard, dashboard_id=did)


async def get_dashboard_by_name(db: Executor, user_id: UUID | str, name: str) -> Dashboard | None:
    """The user's dashboard with this name, or None."""
    uid = uuid_arg(user_id, "user_id")
    wanted = validate(_Name, name=name).name
    return await db.fetch_one(Dashboard, STATEMENTS.get_dashboard_by_name, user_id=uid, name=wanted)


async def list_dashboards(db: Executor, user_id: UUID | str) -> list[Dashboard]:
    """The user's dashboards, by name."""
    uid = uuid_arg(user_id, "user_id")
    return await db.fetch_many(Dashboard, STATEMENTS.list_dashboards, user_id=uid)


async def list_all_dashboards(db: Executor, *, limit: int = 500) -> list[Dashboard]:
    """Every user's dashboards (the organisation's), by name, at most `limit` (1 to 10,000).
    In a scoped transaction, only those the actor may read: all of them for an admin."""
    wanted = int_arg(limit, "limit", 1, 10_000)
    return await db.fetch_many(Dashboard, STATEMENTS.list_all_dashboards, limit=wanted)


async def rename_dashboard(db: Executor, dashboard_id: UUID | str, name: str) -> Dashboard:
    """Rename a dashboard. NotFound if it does not exist; AlreadyExists if its user has
    another dashboard of that name."""
    did = uuid_arg(dashboard_id, "dashboard_id")
    wanted = validate(_Name, name=name).name
    dashboard = await db.fetch_one(
        Dashboard, STATEMENTS.rename_dashboard, dashboard_id=did, name=wanted
    )
    if dashboard is None:
        raise NotFound(f"no dashboard {did}")
    return dashboard


async def delete_dashboard(db: Executor, dashboard_id: UUID | str) -> bool:
    """Delete a dashboard; True if there was one. Its samples stay, detached from it, and
    still count in their user's series."""
    did = uuid_arg(dashboard_id, "dashboard_id")
    return await db.execute_rows(STATEMENTS.delete_dashboard, dashboard_id=did) > 0
