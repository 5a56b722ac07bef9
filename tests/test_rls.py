"""Row-level security on PostgreSQL: a scoped transaction sees and writes only its actor's
rows, through query functions and through raw SQL alike; SQLite refuses scoping."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

import stratus_sql
import stratus_sql.queries.audit
from stratus_sql import (
    Actor,
    Database,
    DatabaseError,
    Executor,
    InvalidInput,
    StratusError,
    UsageError,
)
from stratus_sql.drivers import pgconnect as postgres
from stratus_sql.queries import api_keys, conversations, dashboards, memory, metrics, users
from stratus_sql.records import User
from tests.checks import adhoc, present


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Database]:
    async with await stratus_sql.connect(pg_url) as db:
        yield db


async def owner(db: Database, role: str = "pilot") -> User:
    user = await users.create_user(
        db, name="Ana", email=f"r.{uuid.uuid4().hex[:10]}@x.com", role=role
    )
    chat = await conversations.create_conversation(db, user_id=user.user_id, title="privada")
    await conversations.add_message(
        db, conversation_id=chat.conversation_id, user_id=user.user_id, content="oi",
        message_type="user_input",
    )  # fmt: skip
    await memory.store_memory(
        db,
        user_id=user.user_id,
        key="k",
        value="segredo",
        memory_type="critical",
        importance_score=1,
    )
    await dashboards.create_dashboard(db, user_id=user.user_id, name="Painel")
    await api_keys.create_api_key(db, user_id=user.user_id)
    return user


class Column(BaseModel):
    """The one column of a row of SQL a test runs, of any type."""

    value: Any


async def raw(tx: Executor, sql: str, **params: object) -> list[object]:
    """SQL of the test's own (one column, `:name` parameters) run inside the transaction, on
    its connection: the column's values."""
    rows = await tx.fetch_many(Column, adhoc("raw_sql :many -> Column", postgres=sql), **params)
    return [row.value for row in rows]


async def test_a_scoped_transaction_sees_only_its_actors_rows(pg: Database) -> None:
    a, b = await owner(pg), await owner(pg)
    b_chat = (await conversations.list_conversations(pg, b.user_id)).items[0]
    async with pg.transaction(actor=Actor(user_id=a.user_id), scoped=True) as tx:
        assert await users.get_user(tx, a.user_id) is not None
        assert await users.get_user(tx, b.user_id) is None
        assert (await conversations.list_conversations(tx, b.user_id)).items == []
        assert (await conversations.list_messages(tx, b_chat.conversation_id)).items == []
        assert await memory.get_memory(tx, b.user_id, "k") is None
        assert await memory.search_memories(tx, b.user_id, "segredo") == []
        assert await dashboards.list_dashboards(tx, b.user_id) == []
        assert await api_keys.list_api_keys(tx, b.user_id) == []
        assert len((await conversations.list_conversations(tx, a.user_id)).items) == 1
        for table in (
            "users", "conversations", "messages", "memory_entries", "dashboards", "api_keys",
        ):  # fmt: skip
            owners = set(await raw(tx, f"SELECT user_id FROM {table}"))
            assert owners == {a.user_id}, table


async def test_a_scoped_transaction_cannot_change_another_users_rows(pg: Database) -> None:
    a, b = await owner(pg), await owner(pg)
    b_before = await users.get_user(pg, b.user_id)
    b_chat = (await conversations.list_conversations(pg, b.user_id)).items[0]
    b_keys = await api_keys.list_api_keys(pg, b.user_id)
    actor = Actor(user_id=a.user_id)
    attempts = [
        lambda tx: api_keys.revoke_api_key(tx, b_keys[0].key_id),
        lambda tx: api_keys.create_api_key(tx, user_id=b.user_id),
        lambda tx: users.update_preferences(tx, b.user_id, {"x": 1}),
        lambda tx: conversations.delete_conversation(tx, b_chat.conversation_id),
        lambda tx: conversations.create_conversation(tx, user_id=b.user_id, title="intrusa"),
        lambda tx: memory.store_memory(
            tx,
            user_id=b.user_id,
            key="k",
            value="sobrescrito",
            memory_type="critical",
            importance_score=1,
        ),
        lambda tx: metrics.record_metrics(
            tx,
            [
                {
                    "user_id": b.user_id,
                    "ia_efficiency": 1.0,
                    "model_accuracy": 1.0,
                    "processing_time_ms": 1.0,
                    "memory_usage_mb": 1.0,
                    "error_rate": 0.0,
                }
            ],
        ),
    ]
    for attempt in attempts:
        try:
            async with pg.transaction(actor=actor, scoped=True) as tx:
                result = await attempt(tx)
                assert result in ([], None), result
        except StratusError:
            pass  # refused outright: NotFound, or the policy's WITH CHECK
    for sql in (
        "UPDATE users SET name = 'x' WHERE user_id = :user_id RETURNING 1",
        "DELETE FROM memory_entries WHERE user_id = :user_id RETURNING 1",
    ):
        async with pg.transaction(actor=actor, scoped=True) as tx:
            assert await raw(tx, sql, user_id=b.user_id) == []  # raw SQL: no row reached
    assert await users.get_user(pg, b.user_id) == b_before
    assert present(await users.get_user(pg, b.user_id)).preferences == {}
    b_chat_now = present(await conversations.get_conversation(pg, b_chat.conversation_id))
    assert b_chat_now.status.value == "active"
    assert present(await memory.get_memory(pg, b.user_id, "k")).value == "segredo"
    assert len((await conversations.list_conversations(pg, b.user_id)).items) == 1
    assert await api_keys.list_api_keys(pg, b.user_id) == b_keys


async def test_policies_fail_closed_without_an_actor(pg: Database) -> None:
    await owner(pg)
    async with pg.transaction(scoped=True) as tx:
        assert await raw(tx, "SELECT user_id FROM users") == []
        assert await raw(tx, "SELECT 1 FROM memory_entries") == []
        assert await raw(tx, "SELECT 1 FROM api_keys") == []


async def test_an_admin_actor_reads_every_users_rows_but_writes_only_its_own(pg: Database) -> None:
    admin, b = await owner(pg, role="admin"), await owner(pg)
    async with pg.transaction(actor=Actor(user_id=admin.user_id), scoped=True) as tx:
        assert await users.get_user(tx, b.user_id) == await users.get_user(pg, b.user_id)
        assert len((await conversations.list_conversations(tx, b.user_id)).items) == 1
        assert (
            await raw(
                tx,
                "UPDATE users SET name = 'x' WHERE user_id = :user_id RETURNING 1",
                user_id=b.user_id,
            )
            == []
        )


async def test_the_scoped_role_ends_with_the_transaction(pg: Database) -> None:
    a, b = await owner(pg), await owner(pg)
    async with pg.transaction(actor=Actor(user_id=a.user_id), scoped=True):
        pass
    assert await users.get_user(pg, b.user_id) is not None  # back to the service's view
    with pytest.raises(UsageError, match="outermost"):
        async with pg.transaction(), pg.transaction(scoped=True):
            pass


async def test_sqlite_refuses_scoped_transactions(sqlite_url: str) -> None:
    async with await stratus_sql.connect(sqlite_url) as db:
        with pytest.raises(UsageError, match="PostgreSQL"):
            async with db.transaction(scoped=True):
                pass


# Connects twice in a process of its own (this one may have warned already) and prints, after
# each connection, the messages of the UnprotectedRoleWarnings raised so far.
CONNECTS_TWICE = """
import asyncio, json, sys, warnings
import stratus_sql
from stratus_sql.drivers.pgconnect import UnprotectedRoleWarning
async def main():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnprotectedRoleWarning)  # no deduplication by Python
        for _ in range(2):
            db = await stratus_sql.connect(sys.argv[1])
            await db.close()
            said = [str(w.message) for w in caught if w.category is UnprotectedRoleWarning]
            print(json.dumps(said))
asyncio.run(main())
"""


def test_connecting_as_a_superuser_warns_once(pg_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CONNECTS_TWICE, pg_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    after_first, after_second = (json.loads(line) for line in done.stdout.splitlines())
    assert len(after_first) == 1
    assert "row-level security" in after_first[0]
    assert after_second == after_first  # said once per process


async def test_the_scoped_role_may_only_append_to_the_audit_trail(pg: Database) -> None:
    a = await owner(pg)
    for sql in (
        "SELECT 1 FROM audit_log",
        "UPDATE audit_log SET action = 'X' WHERE record_id = :record_id",
        "DELETE FROM audit_log WHERE record_id = :record_id",
        "SELECT 1 FROM audit_seals",
    ):
        with pytest.raises(DatabaseError, match="permission denied") as refused:
            async with pg.transaction(actor=Actor(user_id=a.user_id), scoped=True) as tx:
                params = {"record_id": a.user_id} if ":record_id" in sql else {}
                await raw(tx, sql, **params)
        assert refused.value.sqlstate == "42501"  # insufficient_privilege
        assert isinstance(refused.value.__cause__, asyncpg.InsufficientPrivilegeError)
    async with pg.transaction(actor=Actor(user_id=a.user_id), scoped=True) as tx:
        await users.update_preferences(tx, a.user_id, {"via": "escopo"})  # its trigger appends
    (latest,) = await stratus_sql.queries.audit.list_audit(pg, record_id=a.user_id, limit=1)
    assert (latest.action, latest.user_id) == ("UPDATE", a.user_id)


@pytest.fixture
async def app_login(pg_url: str) -> AsyncIterator[str]:
    """A URL for an application login set up as the README recommends: no superuser, no
    BYPASSRLS, not the owner; dropped afterwards (roles are cluster-wide)."""
    import psycopg

    url = pg_url
    role = f"stratus_app_{uuid.uuid4().hex[:8]}"
    tables = (
        "users, conversations, messages, messages_archive, memory_entries, dashboards, metrics,"
        " api_keys"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")
        conn.execute(f"GRANT stratus_scoped TO {role}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {role}")
        conn.execute(f"GRANT SELECT, INSERT ON audit_log, audit_seals TO {role}")
        conn.execute(f"GRANT SELECT ON SEQUENCE audit_log_audit_id_seq TO {role}")
        conn.execute(f"GRANT SELECT ON metrics_hourly, metrics_retention TO {role}")
        # The login that runs erasures:
        conn.execute(f"GRANT UPDATE ON audit_log, audit_seals TO {role}")
        conn.execute(f"GRANT DELETE ON metrics_hourly TO {role}")
        conn.execute(f"GRANT EXECUTE ON FUNCTION metrics_forget_user_rollups(uuid) TO {role}")
    try:
        yield url.replace("root@", f"{role}@", 1)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


async def test_the_recommended_app_login_works_scoped_and_unscoped(app_login: str) -> None:
    sample = {
        "ia_efficiency": 0.9, "model_accuracy": 0.9, "processing_time_ms": 10.0,
        "memory_usage_mb": 100.0, "error_rate": 0.0,
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", postgres.UnprotectedRoleWarning)  # not a bypassing role
        db = await stratus_sql.connect(app_login)
    async with db:
        a, b = await owner(db), await owner(db)
        assert await metrics.record_metrics(db, [{**sample, "user_id": a.user_id}]) == 1
        async with db.transaction(actor=Actor(user_id=a.user_id), scoped=True) as tx:
            assert await metrics.record_metrics(tx, [{**sample, "user_id": a.user_id}]) == 1
        with pytest.raises(StratusError, match="row-level security"):
            async with db.transaction(actor=Actor(user_id=a.user_id), scoped=True) as tx:
                await metrics.record_metrics(tx, [{**sample, "user_id": b.user_id}])
        series = await metrics.dashboard_series(db, user_id=a.user_id)
        assert series[-1].samples == 2
        week = await metrics.dashboard_series(db, user_id=a.user_id, period="7d")
        assert sum(bucket.samples for bucket in week) == 2
        # Erasure takes the person out of the rollups with the login's own grants.
        assert await users.erase_user(db, a.user_id) is True
        week = await metrics.dashboard_series(db, user_id=a.user_id, period="7d")
        assert sum(bucket.samples for bucket in week) == 0


async def test_a_temporary_table_cannot_stand_in_for_the_rollups(app_login: str) -> None:
    """The rollup trigger runs as the owner: a login's temporary table named like the
    rollups must not receive its writes (nor run code of the login's as the owner)."""
    import psycopg

    async with await stratus_sql.connect(app_login) as db:
        who = await owner(db)
    with psycopg.connect(app_login, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE metrics_hourly (LIKE public.metrics_hourly INCLUDING ALL)")
        conn.execute(
            "INSERT INTO metrics (metric_id, user_id, ia_efficiency, model_accuracy,"
            " processing_time_ms, memory_usage_mb, error_rate, timestamp)"
            " VALUES (gen_random_uuid(), %s, 0.5, 0.5, 10, 10, 0, now())",
            (who.user_id,),
        )
        assert conn.execute("SELECT count(*) FROM pg_temp.metrics_hourly").fetchone() == (0,)
        assert conn.execute(
            "SELECT sum(samples) FROM public.metrics_hourly WHERE user_id = %s", (who.user_id,)
        ).fetchone() == (1,)


async def test_an_admin_cannot_write_into_another_users_conversation(pg: Database) -> None:
    admin, b = await owner(pg, role="admin"), await owner(pg)
    b_chat = (await conversations.list_conversations(pg, b.user_id)).items[0]
    with pytest.raises(StratusError):
        async with pg.transaction(actor=Actor(user_id=admin.user_id), scoped=True) as tx:
            await conversations.add_message(
                tx, conversation_id=b_chat.conversation_id, user_id=admin.user_id,
                content="intrusa", message_type="system",
            )  # fmt: skip
    after = await conversations.get_conversation(pg, b_chat.conversation_id)
    assert after is not None
    assert after.message_count == len(
        (await conversations.list_messages(pg, b_chat.conversation_id)).items
    )


async def test_a_series_read_as_an_actor_counts_only_what_they_may_read(pg: Database) -> None:
    pilot, other, admin = await owner(pg), await owner(pg), await owner(pg, "admin")
    now = datetime.now(UTC).replace(minute=30)
    for person, efficiency in ((pilot, 0.25), (other, 0.75)):
        await metrics.record_metrics(
            pg,
            [
                {
                    "user_id": person.user_id,
                    "timestamp": now - timedelta(hours=hours),
                    "ia_efficiency": efficiency,
                    "model_accuracy": 0.9,
                    "processing_time_ms": 120.0,
                    "memory_usage_mb": 512.0,
                    "error_rate": 0.01,
                }
                for hours in (1, 5, 30)
            ],
        )
    for period in ("24h", "7d"):
        # The organisation's series, filtered by nobody: the policies alone decide.
        as_pilot = await metrics.dashboard_series(
            pg, period=period, now=now, actor=Actor(user_id=pilot.user_id)
        )
        assert as_pilot == await metrics.dashboard_series(
            pg, period=period, now=now, user_id=pilot.user_id
        )
        assert {b.ia_efficiency for b in as_pilot if b.samples} == {0.25}
        as_admin = await metrics.dashboard_series(
            pg, period=period, now=now, actor=Actor(user_id=admin.user_id)
        )
        everyone = await metrics.dashboard_series(pg, period=period, now=now)
        for scoped, plain in zip(as_admin, everyone, strict=True):  # summed in another order
            assert scoped.bucket_start == plain.bucket_start
            assert scoped.model_dump(exclude={"bucket_start"}) == pytest.approx(
                plain.model_dump(exclude={"bucket_start"})
            )
    kept = await metrics.dashboard_series(
        pg, now=now, actor=Actor(user_id=other.user_id), allow_stale=True
    )
    assert {b.ia_efficiency for b in kept.buckets if b.samples} == {0.75}
    with pytest.raises(InvalidInput, match="actor"):
        await metrics.dashboard_series(pg, actor=pilot.user_id)  # type: ignore[call-overload]
    async with pg.transaction() as tx:
        with pytest.raises(UsageError, match="transaction of its own"):
            await metrics.dashboard_series(tx, actor=Actor(user_id=pilot.user_id))


async def test_sqlite_refuses_a_series_read_as_an_actor(sqlite_url: str) -> None:
    async with await stratus_sql.connect(sqlite_url) as db:
        with pytest.raises(UsageError, match="PostgreSQL"):
            await metrics.dashboard_series(db, actor=Actor(user_id=uuid.uuid4()))


async def test_the_organisations_dashboards_are_those_the_actor_may_read(pg: Database) -> None:
    pilot, other, admin = await owner(pg), await owner(pg), await owner(pg, "admin")
    async with pg.transaction(actor=Actor(user_id=pilot.user_id), scoped=True) as tx:
        seen = await dashboards.list_all_dashboards(tx, limit=10_000)
    assert {d.user_id for d in seen} == {pilot.user_id}
    async with pg.transaction(actor=Actor(user_id=admin.user_id), scoped=True) as tx:
        seen = await dashboards.list_all_dashboards(tx, limit=10_000)
    assert {pilot.user_id, other.user_id, admin.user_id} <= {d.user_id for d in seen}
