"""The audit trail on both backends: triggers, actors, append-only, and the hash chain."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import stratus_sql
from stratus_sql import Actor, Database, InvalidInput
from stratus_sql.drivers.sqlite import install_functions
from stratus_sql.queries import audit, conversations, dashboards, memory, users
from stratus_sql.records import AuditEntry, User


def email() -> str:
    return f"a.{uuid.uuid4().hex[:10]}@example.com"


async def history(db: Database, record_id: uuid.UUID) -> list[AuditEntry]:
    """A record's audit rows, oldest first."""
    return (await audit.list_audit(db, record_id=record_id, limit=1000))[::-1]


async def test_insert_update_delete_are_recorded_with_the_right_values(db: Database) -> None:
    user = await users.create_user(db, name="Ana", email=email(), role="pilot", licenses=["PP"])
    await users.update_preferences(db, user.user_id, {"idioma": "pt-BR"})
    await users.update_preferences(db, user.user_id, {})  # changes nothing: no row
    await users.touch_last_active(db, user.user_id)  # bookkeeping only: no row
    rows = await history(db, user.user_id)
    assert [(r.action, r.table_name) for r in rows] == [("INSERT", "users"), ("UPDATE", "users")]
    inserted, updated = rows
    assert inserted.old_values is None
    assert inserted.new_values is not None
    assert inserted.new_values["email"] == user.email
    assert inserted.new_values["licenses"] == ["PP"]
    assert set(inserted.new_values) == set(User.model_fields)
    assert updated.old_values == {"preferences": {}}
    assert updated.new_values == {"preferences": {"idioma": "pt-BR"}}
    assert updated.user_id is None  # no actor

    stored = await memory.store_memory(
        db, user_id=user.user_id, key="k", value="v", memory_type="critical", importance_score=1
    )
    await memory.get_memory(db, user.user_id, "k")  # counting an access: no row
    await memory.forget_memory(db, user.user_id, "k")
    mem = await history(db, stored.memory_id)
    assert [r.action for r in mem] == ["INSERT", "DELETE"]
    assert mem[1].old_values is not None
    assert mem[1].old_values["value"] == "v"
    assert "search_text" not in mem[1].old_values


async def test_conversations_and_dashboards_are_audited_but_messages_are_not(
    db: Database, user: User
) -> None:
    chat = await conversations.create_conversation(db, user_id=user.user_id, title="t")
    message = await conversations.add_message(
        db, conversation_id=chat.conversation_id, user_id=user.user_id, content="oi",
        message_type="user_input", tokens_used=3,
    )  # fmt: skip
    await conversations.archive_conversation(db, chat.conversation_id)
    rows = await history(db, chat.conversation_id)
    assert [r.action for r in rows] == ["INSERT", "UPDATE"]  # the counters' bump is not one
    assert rows[1].new_values == {"status": "archived"}
    assert await history(db, message.message_id) == []
    board = await dashboards.create_dashboard(db, user_id=user.user_id, name="Painel")
    await dashboards.rename_dashboard(db, board.dashboard_id, "Outro")
    await dashboards.delete_dashboard(db, board.dashboard_id)
    assert [r.action for r in await history(db, board.dashboard_id)] == [
        "INSERT",
        "UPDATE",
        "DELETE",
    ]


async def test_the_actor_is_recorded_and_not_carried_into_the_next_transaction(
    database_url: str,
) -> None:
    settings = stratus_sql.Settings.load(pool_min_size=1, pool_max_size=1)
    async with await stratus_sql.connect(database_url, settings=settings) as db:
        actor = Actor(user_id=uuid.uuid4(), ip_address="2001:db8::7", user_agent="app/2.1")
        async with db.transaction(actor=actor) as tx:
            user = await users.create_user(tx, name="Ana", email=email(), role="pilot")
        async with db.transaction() as tx:
            await users.update_preferences(tx, user.user_id, {"a": 1})
        first, second = await history(db, user.user_id)
        assert (first.user_id, first.ip_address, first.user_agent) == (
            actor.user_id,
            "2001:db8::7",
            "app/2.1",
        )
        assert (second.user_id, second.ip_address, second.user_agent) == (None, None, None)
        assert await audit.list_audit(db, user_id=actor.user_id) == [first]


async def test_list_audit_filters_and_pages_newest_first(db: Database) -> None:
    user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    for i in range(5):
        await users.update_preferences(db, user.user_id, {"i": i})
    page = await audit.list_audit(db, record_id=user.user_id, limit=4)
    assert [r.action for r in page] == ["UPDATE"] * 4
    assert [r.audit_id for r in page] == sorted((r.audit_id for r in page), reverse=True)
    rest = await audit.list_audit(db, record_id=user.user_id, before=page[-1].audit_id)
    assert [r.action for r in rest] == ["UPDATE", "INSERT"]
    assert all(r.table_name == "users" for r in await audit.list_audit(db, table_name="users"))
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await audit.list_audit(db, since=later) == []
    for bad in ({"limit": 0}, {"before": 0}, {"since": datetime(2026, 1, 1)}, {"record_id": "x"}):
        with pytest.raises(InvalidInput):
            await audit.list_audit(db, **bad)


def raw_write(url: str, sql: str, *args: object) -> None:
    """Run SQL straight through the driver, as someone with database access would."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), args)
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            install_functions(conn)
            conn.execute(sql, args)


async def test_audit_rows_cannot_be_changed_or_removed(db: Database, database_url: str) -> None:
    user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    (row,) = await history(db, user.user_id)
    with pytest.raises((psycopg.Error, sqlite3.Error), match="append-only"):
        raw_write(
            database_url, "UPDATE audit_log SET action = 'DELETE' WHERE audit_id = ?", row.audit_id
        )
    with pytest.raises((psycopg.Error, sqlite3.Error), match="append-only"):
        raw_write(database_url, "DELETE FROM audit_log WHERE audit_id = ?", row.audit_id)
    if database_url.startswith("postgresql"):
        with pytest.raises(psycopg.Error, match="append-only"):
            raw_write(database_url, "TRUNCATE audit_log")
    assert await history(db, user.user_id) == [row]


@pytest.fixture
async def fresh(blank_url: str) -> AsyncIterator[tuple[Database, str]]:
    """A database of its own, for tests that tamper with the audit trail."""
    stratus_sql.apply_migrations(blank_url)
    async with await stratus_sql.connect(blank_url) as db:
        yield db, blank_url


async def audited_rows(db: Database, n: int) -> User:
    user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    for i in range(n - 1):
        await users.update_preferences(db, user.user_id, {"i": i})
    return user


async def test_seal_and_verify_an_untouched_chain(fresh: tuple[Database, str]) -> None:
    db, _ = fresh
    await audited_rows(db, 5)
    assert await audit.seal(db) == 5
    await audited_rows(db, 3)
    assert await audit.seal(db) == 3
    assert await audit.seal(db) == 0
    report = await audit.verify(db)
    assert (report.ok, report.rows_checked, report.seals_checked) == (True, 8, 2)


async def test_seal_waits_for_open_transactions_and_never_skips_a_row(
    new_pg_database: Callable[[], str],
) -> None:
    url = new_pg_database()
    stratus_sql.apply_migrations(url)
    async with await stratus_sql.connect(url) as db, await stratus_sql.connect(url) as other:
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_writer() -> None:
            async with other.transaction() as tx:  # takes audit id 1, commits last
                await users.create_user(tx, name="Lenta", email=email(), role="pilot")
                started.set()
                await release.wait()

        writer = asyncio.get_running_loop().create_task(slow_writer())
        await started.wait()
        await audited_rows(db, 2)  # ids 2 and 3, committed
        assert await audit.seal(db, wait=0.2) == 0  # id 1 may still come: nothing sealed
        release.set()
        await writer
        assert await audit.seal(db) == 3
        first = min(r.audit_id for r in await audit.list_audit(db, limit=10))
        tamper(url, "UPDATE audit_log SET user_agent = 'forjado' WHERE audit_id = ?", first)
        report = await audit.verify(db)
        assert (report.ok, report.audit_id) == (False, first)


async def test_concurrent_seals_do_not_fork_the_chain(fresh: tuple[Database, str]) -> None:
    db, url = fresh
    await audited_rows(db, 30)
    async with await stratus_sql.connect(url) as other:
        counts = await asyncio.gather(audit.seal(db), audit.seal(other))
    assert sorted(counts) == [0, 30]
    report = await audit.verify(db)
    assert (report.ok, report.rows_checked) == (True, 30)


def tamper(url: str, sql: str, *args: object) -> None:
    """Change audit_log behind the layer's back, past its triggers."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
            conn.execute(sql.replace("?", "%s"), args)
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as lite:
            install_functions(lite)
            lite.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
            lite.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
            lite.execute(sql, args)


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE audit_log SET new_values = NULL WHERE audit_id = ?", "altered"),
        ("DELETE FROM audit_log WHERE audit_id = ?", "missing"),
    ],
)
async def test_verify_names_the_row_changed_behind_its_back(
    fresh: tuple[Database, str], sql: str, problem: str
) -> None:
    db, url = fresh
    await audited_rows(db, 6)
    await audit.seal(db)
    target = (await audit.list_audit(db, limit=6))[2].audit_id
    tamper(url, sql, target)
    report = await audit.verify(db)
    assert not report.ok
    assert report.audit_id == target
    assert report.problem is not None
    assert report.problem.startswith(problem)


async def test_verify_names_a_row_slipped_into_a_sealed_range(fresh: tuple[Database, str]) -> None:
    db, url = fresh
    await audited_rows(db, 4)
    await audit.seal(db)
    victim = (await audit.list_audit(db, limit=4))[1].audit_id
    tamper(url, "DELETE FROM audit_log WHERE audit_id = ?", victim)
    # Put back a forged row under the same id: it is not the row that was sealed.
    overriding = "OVERRIDING SYSTEM VALUE " if url.startswith("postgresql") else ""
    tamper(
        url,
        'INSERT INTO audit_log (audit_id, action, table_name, "timestamp") '
        f"{overriding}VALUES (?, 'INSERT', 'users', ?)",
        victim,
        datetime.now(UTC).isoformat() if not url.startswith("postgresql") else datetime.now(UTC),
    )
    report = await audit.verify(db)
    assert (report.ok, report.audit_id) == (False, victim)
    assert report.problem is not None
    assert report.problem.startswith("altered")


async def test_verify_notices_a_forged_seal(fresh: tuple[Database, str]) -> None:
    db, url = fresh
    await audited_rows(db, 3)
    await audit.seal(db)
    if url.startswith("postgresql"):
        sql = "UPDATE audit_seals SET digest = repeat('0', 64)"
    else:
        sql = "UPDATE audit_seals SET digest = printf('%064d', 0)"
    if url.startswith("postgresql"):
        tamper(url, sql)
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            install_functions(conn)
            conn.execute("DROP TRIGGER audit_seals_no_update")
            conn.execute(sql)
    report = await audit.verify(db)
    assert not report.ok
    assert report.problem == "the chain is broken at this seal"


async def test_a_table_name_holding_nul_is_refused_alike_on_every_backend(db: Database) -> None:
    with pytest.raises(InvalidInput, match=r"table_name: .*NUL"):
        await audit.list_audit(db, table_name="users\x00")
