"""Migrations: apply, roll back, re-apply to an identical catalog, on both backends."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

import stratus_sql
from stratus_sql import AlreadyExists, InvalidInput, RollbackWouldLoseData, UsageError
from stratus_sql.cli import main
from stratus_sql.drivers.sqlite import install_functions
from stratus_sql.migrations import MigrationStatus
from stratus_sql.queries import conversations, memory, users

PG_CATALOG = """
SELECT 'relation', c.relname || ':' || c.relkind::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relname NOT LIKE '%yoyo%'
    AND c.relname NOT LIKE '_stratus_migration%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' ' || udt_name
       || ' null=' || is_nullable || ' default=' || coalesce(column_default, '')
  FROM information_schema.columns
  WHERE table_schema = 'public' AND table_name NOT LIKE '%yoyo%'
    AND table_name NOT LIKE '_stratus_migration%'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint
  WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE '%yoyo%'
    AND conrelid::regclass::text NOT LIKE '_stratus_migration%'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes
  WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'
    AND tablename NOT LIKE '_stratus_migration%'
UNION ALL
SELECT 'enum', t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname
UNION ALL
SELECT 'function', pg_get_functiondef(p.oid) FROM pg_proc p
  WHERE p.pronamespace = 'public'::regnamespace AND p.prokind <> 'a'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'aggregate', p.oid::regprocedure::text || ' ' || a.aggtransfn::text FROM pg_proc p
  JOIN pg_aggregate a ON a.aggfnoid = p.oid
  WHERE p.pronamespace = 'public'::regnamespace
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'trigger', pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'policy', tablename || ' ' || policyname || ' ' || coalesce(qual, '')
  FROM pg_policies WHERE schemaname = 'public'
ORDER BY 1, 2
"""

SQLITE_CATALOG = """
SELECT type, name, tbl_name, sql FROM sqlite_master
WHERE name NOT LIKE '%yoyo%' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_stratus_migration%'
ORDER BY type, name
"""


def catalog(url: str) -> list[tuple[object, ...]]:
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            return [tuple(r) for r in conn.execute(PG_CATALOG).fetchall()]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return [tuple(r) for r in conn.execute(SQLITE_CATALOG).fetchall()]


def test_apply_rollback_apply_gives_an_identical_catalog(blank_url: str) -> None:
    every = [s.id for s in stratus_sql.migration_status(blank_url)]
    assert every
    assert every[0] == "0001.initial_schema"

    assert stratus_sql.apply_migrations(blank_url) == every
    first = catalog(blank_url)
    assert any(kind in ("relation", "table") and "users" in str(name) for kind, name, *_ in first)

    assert stratus_sql.rollback_migrations(blank_url, steps=None) == every[::-1]
    assert catalog(blank_url) == []
    assert stratus_sql.migration_status(blank_url) == [MigrationStatus(m, False) for m in every]

    assert stratus_sql.apply_migrations(blank_url) == every
    assert catalog(blank_url) == first


def test_apply_is_idempotent(blank_url: str) -> None:
    applied = stratus_sql.apply_migrations(blank_url)
    assert applied
    assert stratus_sql.apply_migrations(blank_url) == []
    assert all(s.applied for s in stratus_sql.migration_status(blank_url))


def test_rollback_takes_one_step_by_default(blank_url: str) -> None:
    applied = stratus_sql.apply_migrations(blank_url)
    assert stratus_sql.rollback_migrations(blank_url) == applied[-1:]
    statuses = stratus_sql.migration_status(blank_url)
    assert [s.applied for s in statuses] == [True] * (len(applied) - 1) + [False]
    with pytest.raises(UsageError):
        stratus_sql.rollback_migrations(blank_url, steps=0)


def raw(url: str, sql: str) -> list[tuple[object, ...]]:
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        install_functions(conn)
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def test_an_applied_migration_that_changed_is_refused_by_name(blank_url: str) -> None:
    stratus_sql.apply_migrations(blank_url)
    recorded = {
        migration_id
        for migration_id, _ in raw(
            blank_url, "SELECT migration_id, sha256 FROM _stratus_migration_checksums"
        )
    }
    assert recorded == {s.id for s in stratus_sql.migration_status(blank_url)}
    # The recorded checksum no longer matches the file, as after an edit of the file.
    raw(
        blank_url,
        "UPDATE _stratus_migration_checksums SET sha256 = 'x'"
        " WHERE migration_id = '0003.memory_search'",
    )
    for call in (stratus_sql.apply_migrations, stratus_sql.migration_status):
        with pytest.raises(
            UsageError, match=r"0003\.memory_search\.sql: migration 0003\.memory_search was edited"
        ):
            call(blank_url)


def test_two_processes_migrating_at_once_apply_each_migration_once(blank_url: str) -> None:
    command = [str(Path(sys.executable).with_name("stratus-sql")), "--url", blank_url, "migrate"]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    applied = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied ")
    ]
    every = [s.id for s in stratus_sql.migration_status(blank_url)]
    assert sorted(applied) == sorted(f"applied {m}" for m in every)
    assert raw(blank_url, "SELECT count(*) FROM _yoyo_migration") == [(len(every),)]


async def some_rows(url: str) -> None:
    """A user with a conversation, a message and a memory, written through the layer."""
    db = await stratus_sql.connect(url)
    try:
        user = await users.create_user(db, name="Ana", email="ana@example.com", role="pilot")
        talk = await conversations.create_conversation(db, user_id=user.user_id, title="VFR")
        await conversations.add_message(
            db,
            conversation_id=talk.conversation_id,
            user_id=user.user_id,
            content="Teto mínimo?",
            message_type="user_input",
        )
        await memory.store_memory(
            db,
            user_id=user.user_id,
            key="aeronave",
            value="C152",
            memory_type="long_term",
            importance_score=0.5,
        )
    finally:
        await db.close()


def test_rollback_refuses_to_drop_tables_holding_rows(blank_url: str) -> None:
    every = stratus_sql.apply_migrations(blank_url)
    asyncio.run(some_rows(blank_url))

    with pytest.raises(RollbackWouldLoseData) as refused:
        stratus_sql.rollback_migrations(blank_url, steps=None)
    lost = refused.value.tables
    assert {t: lost[t] for t in ("users", "conversations", "messages", "memory_entries")} == {
        "users": 1,
        "conversations": 1,
        "messages": 1,
        "memory_entries": 1,
    }
    assert "metrics" not in lost  # empty tables are not at risk
    assert "users (1 rows)" in str(refused.value)
    assert "force=True" in str(refused.value)
    # Nothing was rolled back.
    assert all(s.applied for s in stratus_sql.migration_status(blank_url))
    assert raw(blank_url, "SELECT count(*) FROM messages") == [(1,)]

    status = {s.id: s.rollback_loses for s in stratus_sql.migration_status(blank_url)}
    assert status["0001.initial_schema"] == lost
    # 0007 moves the audit trail back rather than dropping it, and the memory search index
    # (0003) is rebuilt from memory_entries when applied again: neither loses rows.
    assert all(not status[m] for m in every[1:])
    assert stratus_sql.rollback_migrations(blank_url, steps=len(every) - 1) == every[:0:-1]

    assert stratus_sql.rollback_migrations(blank_url, force=True) == every[:1]
    assert catalog(blank_url) == []


def test_status_and_rollback_commands_name_what_would_be_lost(
    blank_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stratus_sql.apply_migrations(blank_url)
    asyncio.run(some_rows(blank_url))
    capsys.readouterr()

    assert main(["--url", blank_url, "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("applied  0001.initial_schema  (rollback would drop or empty ")
    assert "users (1 rows)" in lines[0]
    assert "memory_entries (1 rows)" in lines[0]
    assert all("rollback" not in line for line in lines[1:])

    assert main(["--url", blank_url, "rollback", "--all"]) == 1
    err = capsys.readouterr().err
    assert "would drop or empty tables holding rows" in err
    assert "messages (1 rows)" in err
    assert all(s.applied for s in stratus_sql.migration_status(blank_url))

    assert main(["--url", blank_url, "rollback", "--all", "--force"]) == 0
    assert "rolled back 0001.initial_schema" in capsys.readouterr().out
    assert catalog(blank_url) == []


def users_by_id(url: str) -> dict[str, str]:
    return {str(i): str(e) for i, e in raw(url, "SELECT user_id, email FROM users")}


def insert_users(url: str, emails: list[str]) -> list[str]:
    """Users as the layer stored them before 0008: emails only lowercased."""
    ids = [str(uuid.uuid4()) for _ in emails]
    for user_id, address in zip(ids, emails, strict=True):
        raw(
            url,
            "INSERT INTO users (user_id, name, email, role) "
            f"VALUES ('{user_id}', 'Ana', '{address}', 'pilot')",
        )
    return ids


# The migrations after 0007, which the 0008 tests roll back to insert rows as they were.
AFTER_0007 = [
    "0008.email_casefold",
    "0009.metrics_rollups",
    "0010.api_keys",
    "0011.series_cut_hours",
    "0012.series_cut_parts",
]


def test_0008_folds_the_emails_stored_before_it(blank_url: str) -> None:
    stratus_sql.apply_migrations(blank_url)
    assert stratus_sql.rollback_migrations(blank_url, steps=len(AFTER_0007)) == AFTER_0007[::-1]
    ids = insert_users(
        blank_url, ["straße@example.com", "c\u0327a\u0303o@example.com", "ana@example.com"]
    )

    assert stratus_sql.apply_migrations(blank_url) == AFTER_0007
    assert users_by_id(blank_url) == dict(
        zip(ids, ["strasse@example.com", "ção@example.com", "ana@example.com"], strict=True)
    )

    async def lookups() -> None:
        db = await stratus_sql.connect(blank_url)
        try:
            found = await users.get_user_by_email(db, "STRAẞE@EXAMPLE.COM")
            assert found is not None
            assert str(found.user_id) == ids[0]
            with pytest.raises(AlreadyExists):
                await users.create_user(db, name="Bia", email="Strasse@example.com", role="pilot")
        finally:
            await db.close()

    asyncio.run(lookups())


def test_0008_refuses_emails_that_fold_to_one_address_and_changes_nothing(
    blank_url: str,
) -> None:
    stratus_sql.apply_migrations(blank_url)
    stratus_sql.rollback_migrations(blank_url, steps=len(AFTER_0007))
    ids = insert_users(blank_url, ["straße@example.com", "strasse@example.com"])
    before = users_by_id(blank_url)

    with pytest.raises(AlreadyExists, match=r"strasse@example\.com: users ") as refused:
        stratus_sql.apply_migrations(blank_url)
    assert all(user_id in str(refused.value) for user_id in ids)
    assert refused.value.constraint == "users_email_key"
    assert [s.id for s in stratus_sql.migration_status(blank_url) if not s.applied] == AFTER_0007
    assert users_by_id(blank_url) == before
    # The index of 0001 is still in place.
    with pytest.raises((psycopg.errors.UniqueViolation, sqlite3.IntegrityError)):
        insert_users(blank_url, ["STRASSE@example.com"])


def test_0008_refuses_an_email_that_folding_makes_too_long(blank_url: str) -> None:
    stratus_sql.apply_migrations(blank_url)
    stratus_sql.rollback_migrations(blank_url, steps=len(AFTER_0007))
    address = "ß" + "a" * 241 + "@example.com"  # 254 characters; "ss" makes it 255
    [user_id] = insert_users(blank_url, [address])
    with pytest.raises(InvalidInput, match=f"users {user_id} grow past 254"):
        stratus_sql.apply_migrations(blank_url)
    assert users_by_id(blank_url) == {user_id: address}
