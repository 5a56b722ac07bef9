"""queries.dashboards on both backends."""

from __future__ import annotations

import uuid

import pytest

from stratus_sql import AlreadyExists, Database, InvalidInput, NotFound
from stratus_sql.queries import dashboards, users
from stratus_sql.records import User


async def test_create_get_list_rename_delete(db: Database, user: User) -> None:
    monitoring = await dashboards.create_dashboard(
        db, user_id=user.user_id, name="AI Monitoring Dashboard"
    )
    assert monitoring.name == "AI Monitoring Dashboard"
    assert monitoring.created_at == monitoring.updated_at
    assert await dashboards.get_dashboard(db, monitoring.dashboard_id) == monitoring
    assert (
        await dashboards.get_dashboard_by_name(db, user.user_id, "AI Monitoring Dashboard")
        == monitoring
    )
    other = await dashboards.create_dashboard(db, user_id=user.user_id, name="Latência")
    assert await dashboards.list_dashboards(db, user.user_id) == [monitoring, other]

    renamed = await dashboards.rename_dashboard(db, other.dashboard_id, "Desempenho")
    assert renamed.name == "Desempenho"
    assert renamed.updated_at >= other.updated_at
    assert await dashboards.list_dashboards(db, user.user_id) == [monitoring, renamed]

    assert await dashboards.delete_dashboard(db, renamed.dashboard_id) is True
    assert await dashboards.delete_dashboard(db, renamed.dashboard_id) is False
    assert await dashboards.get_dashboard(db, renamed.dashboard_id) is None
    assert await dashboards.list_dashboards(db, user.user_id) == [monitoring]


async def test_names_are_unique_per_user(db: Database, user: User) -> None:
    first = await dashboards.create_dashboard(db, user_id=user.user_id, name="Painel")
    with pytest.raises(AlreadyExists) as caught:
        await dashboards.create_dashboard(db, user_id=user.user_id, name="Painel")
    assert caught.value.constraint == "dashboards_user_name_key"
    second = await dashboards.create_dashboard(db, user_id=user.user_id, name="Outro")
    with pytest.raises(AlreadyExists):
        await dashboards.rename_dashboard(db, second.dashboard_id, "Painel")
    assert await dashboards.list_dashboards(db, user.user_id) == [second, first]


async def test_missing_rows(db: Database, user: User) -> None:
    with pytest.raises(NotFound):
        await dashboards.create_dashboard(db, user_id=uuid.uuid4(), name="x")
    with pytest.raises(NotFound):
        await dashboards.rename_dashboard(db, uuid.uuid4(), "x")
    assert await dashboards.get_dashboard(db, uuid.uuid4()) is None
    assert await dashboards.get_dashboard_by_name(db, user.user_id, "nenhum") is None
    assert await dashboards.list_dashboards(db, uuid.uuid4()) == []


@pytest.mark.parametrize("name", ["", "   ", " Painel", "Painel\u3000", "x" * 201, "a\x00b", 7])
async def test_bad_names_are_rejected_and_nothing_written(
    db: Database, user: User, name: object
) -> None:
    with pytest.raises(InvalidInput, match="name"):
        # wrong types on purpose: the refusal is what is tested
        await dashboards.create_dashboard(db, user_id=user.user_id, name=name)  # type: ignore[arg-type]
    assert await dashboards.list_dashboards(db, user.user_id) == []


async def test_every_users_dashboards_are_listed_for_the_organisation(
    db: Database, user: User
) -> None:
    other = await users.create_user(
        db, name="Bia", email=f"bia.{uuid.uuid4().hex[:8]}@example.com", role="mechanic"
    )
    mine = await dashboards.create_dashboard(db, user_id=user.user_id, name="Zulu")
    theirs = await dashboards.create_dashboard(db, user_id=other.user_id, name="Alfa")
    listed = await dashboards.list_all_dashboards(db, limit=10_000)
    ids = [d.dashboard_id for d in listed]
    assert {mine.dashboard_id, theirs.dashboard_id} <= set(ids)
    assert [d.name for d in listed] == sorted(d.name for d in listed)
    assert len(await dashboards.list_all_dashboards(db, limit=1)) == 1
    for bad in (0, 10_001, True, "5"):
        with pytest.raises(InvalidInput, match="limit"):
            await dashboards.list_all_dashboards(db, limit=bad)  # type: ignore[arg-type]
