"""Behaviour of the two backends behind `Database`: storage, transactions, errors."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from pydantic import BaseModel

import stratus_sql
from stratus_sql import (
    Actor,
    AlreadyExists,
    Database,
    DatabaseError,
    DatabaseUnavailable,
    Executor,
    UsageError,
)
from stratus_sql.queries import users
from stratus_sql.records import User
from tests.checks import adhoc, present


def email() -> str:
    return f"b.{uuid.uuid4().hex[:12]}@example.com"


async def raw_one(url: str, sql: str, *args: object) -> tuple[object, ...]:
    """One row read straight through the driver, bypassing stratus_sql ($n parameters)."""
    if url.startswith("postgresql"):
        pg = await asyncpg.connect(url)
        try:
            row = await pg.fetchrow(sql, *args)
        finally:
            await pg.close()
        assert row is not None
        return tuple(row)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as lite:
        return tuple(lite.execute(re.sub(r"\$\d+", "?", sql), [str(a) for a in args]).fetchone())


async def test_json_is_stored_as_json_values_not_strings(db: Database, database_url: str) -> None:
    user = await users.create_user(
        db, name="Ana", email=email(), role="pilot", licenses=["IFR"], preferences={"a": {"b": 1}}
    )
    type_of = "jsonb_typeof" if db.dialect == "postgres" else "json_type"
    extract = (
        "preferences -> 'a' ->> 'b'" if db.dialect == "postgres" else "preferences ->> '$.a.b'"
    )
    row = await raw_one(
        database_url,
        f"SELECT {type_of}(preferences), {type_of}(licenses), {extract}"
        " FROM users WHERE user_id = $1",
        user.user_id,
    )
    assert row[:2] == ("object", "array")
    assert str(row[2]) == "1"


async def test_sqlite_stores_sortable_utc_text(sqlite_url: str) -> None:
    database_url = sqlite_url
    async with await stratus_sql.connect(database_url) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    user_id, created_at = await raw_one(
        database_url, "SELECT user_id, created_at FROM users WHERE user_id = $1", user.user_id
    )
    assert user_id == str(user.user_id)
    assert isinstance(created_at, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", created_at)


async def test_timestamps_have_microseconds_and_keep_write_order(db: Database) -> None:
    created = [
        await users.create_user(db, name=f"U{i}", email=email(), role="pilot") for i in range(20)
    ]
    stamps = [u.created_at for u in created]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    assert any(s.microsecond % 1000 for s in stamps)
    assert all(s.utcoffset() == timedelta(0) for s in stamps)


async def test_transaction_commits_on_success(db: Database) -> None:
    address = email()
    async with db.transaction() as tx:
        user = await users.create_user(tx, name="Ana", email=address, role="pilot")
    assert await users.get_user(db, user.user_id) == user


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    address = email()
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await users.create_user(tx, name="Ana", email=address, role="pilot")
            raise RuntimeError("boom")
    assert await users.get_user_by_email(db, address) is None


async def test_failed_statement_rolls_back_the_whole_transaction(db: Database) -> None:
    taken = email()
    await users.create_user(db, name="Ana", email=taken, role="pilot")
    fresh = email()
    with pytest.raises(AlreadyExists):
        async with db.transaction() as tx:
            await users.create_user(tx, name="Bia", email=fresh, role="pilot")
            await users.create_user(tx, name="Dup", email=taken, role="pilot")
    assert await users.get_user_by_email(db, fresh) is None


async def test_nested_transaction_is_a_savepoint(db: Database) -> None:
    outer_email, inner_email = email(), email()
    async with db.transaction() as tx:
        await users.create_user(tx, name="Outer", email=outer_email, role="pilot")
        with pytest.raises(RuntimeError):
            async with db.transaction() as inner:
                await users.create_user(inner, name="Inner", email=inner_email, role="pilot")
                raise RuntimeError("undo the inner block only")
        async with tx.transaction() as kept:
            outer_so_far = await users.get_user_by_email(kept, outer_email)
            assert outer_so_far is not None
            await users.touch_last_active(kept, outer_so_far.user_id)
    outer = await users.get_user_by_email(db, outer_email)
    assert outer is not None
    assert outer.last_active is not None
    assert await users.get_user_by_email(db, inner_email) is None


async def test_database_calls_inside_a_transaction_join_it(db: Database) -> None:
    address = email()
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await users.create_user(db, name="Ana", email=address, role="pilot")
            assert await users.get_user_by_email(db, address) is not None
            raise RuntimeError("roll back what went through db")
    assert await users.get_user_by_email(db, address) is None


async def test_concurrent_transactions_all_commit(db: Database) -> None:
    async def create(i: int) -> User:
        async with db.transaction() as tx:
            return await users.create_user(tx, name=f"C{i}", email=email(), role="pilot")

    created = await asyncio.gather(*(create(i) for i in range(30)))
    for user in created:
        assert await users.get_user(db, user.user_id) == user


async def test_two_databases_on_one_sqlite_file_never_see_locked(
    sqlite_url: str,
) -> None:
    database_url = sqlite_url
    first, second = await stratus_sql.connect(database_url), await stratus_sql.connect(database_url)
    code = f"T{uuid.uuid4().hex[:10].upper()}"  # a licence only this test's users hold
    try:

        async def write(db: Database, i: int) -> tuple[uuid.UUID, int]:
            async with db.transaction() as tx:
                user = await users.create_user(
                    tx, name=f"L{i}", email=email(), role="pilot", licenses=[code]
                )
                await asyncio.sleep(0)
                await users.update_preferences(tx, user.user_id, {"i": i})
            return user.user_id, i

        written = await asyncio.gather(*(write(db, i) for i in range(25) for db in (first, second)))
        stored = (await users.list_users(first, license=code, limit=100)).items
        # Every one of the 50 users is there exactly once, with the preferences it was given.
        assert len(stored) == 50
        assert {u.user_id: u.preferences for u in stored} == {
            user_id: {"i": i} for user_id, i in written
        }
    finally:
        await first.close()
        await second.close()


class ActorSettings(BaseModel):
    user_id: str | None
    ip_address: str | None
    user_agent: str | None


ACTOR_SETTINGS = adhoc(
    "actor_settings :one -> ActorSettings",
    postgres="SELECT current_setting('stratus.actor_user_id', true),"
    " current_setting('stratus.actor_ip', true),"
    " current_setting('stratus.actor_user_agent', true)",
    sqlite="SELECT stratus_get('actor_user_id'), stratus_get('actor_ip'),"
    " stratus_get('actor_user_agent')",
)


async def test_actor_is_set_for_its_transaction_only(database_url: str) -> None:
    settings = stratus_sql.Settings.load(
        database_url=database_url, pool_min_size=1, pool_max_size=1
    )
    async with await stratus_sql.connect(settings=settings) as db:
        actor = Actor(user_id=uuid.uuid4(), ip_address="10.1.2.3", user_agent="stratus-tests/1.0")

        # Read through the transaction's own connection, as the audit triggers will.
        async def seen(tx: Executor) -> tuple[str | None, ...]:
            row = present(await tx.fetch_one(ActorSettings, ACTOR_SETTINGS))
            values = (row.user_id, row.ip_address, row.user_agent)
            if db.dialect == "postgres":  # a setting reset after its transaction reads ''
                return tuple(v or None for v in values)
            return values

        async with db.transaction(actor=actor) as tx:
            assert await seen(tx) == (str(actor.user_id), "10.1.2.3", "stratus-tests/1.0")
        async with db.transaction() as tx:  # the same, single pooled connection
            assert await seen(tx) == (None, None, None)


async def test_actor_only_on_the_outermost_transaction(db: Database) -> None:
    async with db.transaction(actor=Actor(user_id=uuid.uuid4())):
        with pytest.raises(UsageError, match="outermost"):
            async with db.transaction(actor=Actor(user_id=uuid.uuid4())):
                pass
    with pytest.raises(UsageError, match="Actor"):
        # wrong types on purpose: the refusal is what is tested
        async with db.transaction(actor="someone"):  # type: ignore[arg-type]
            pass


async def test_driver_errors_are_chained(db: Database) -> None:
    address = email()
    await users.create_user(db, name="Ana", email=address, role="pilot")
    with pytest.raises(AlreadyExists) as caught:
        await users.create_user(db, name="Ana", email=address, role="pilot")
    driver_error = (
        asyncpg.UniqueViolationError if db.dialect == "postgres" else sqlite3.IntegrityError
    )
    assert isinstance(caught.value.__cause__, driver_error)


async def test_statement_misuse_is_a_usage_error(db: Database) -> None:
    with pytest.raises(UsageError, match="is :execrows, not :one"):
        await db.fetch_one(User, users.STATEMENTS.touch_last_active, user_id=uuid.uuid4())
    with pytest.raises(UsageError, match="needs parameter 'user_id'"):
        await db.fetch_one(User, users.STATEMENTS.get_user)
    with pytest.raises(UsageError, match="returns User, not Page"):
        await db.fetch_one(
            stratus_sql.records.Page, users.STATEMENTS.get_user, user_id=uuid.uuid4()
        )


async def test_closed_database_refuses_work(database_url: str) -> None:
    async with await stratus_sql.connect(database_url) as db:
        await users.get_user(db, uuid.uuid4())
    with pytest.raises(UsageError, match="closed"):
        await users.get_user(db, uuid.uuid4())
    await db.close()


async def test_missing_sqlite_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable, match="no such directory"):
        await stratus_sql.connect(f"sqlite:///{tmp_path}/missing/x.db")


async def test_unreachable_postgres_is_unavailable_and_hides_the_password() -> None:
    settings = stratus_sql.Settings.load(connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as caught:
        await stratus_sql.connect("postgresql://root:s3cr3t@127.0.0.1:1/x", settings=settings)
    assert time.monotonic() - started < 3
    assert "127.0.0.1:1" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


async def test_connect_defaults_to_the_embedded_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert stratus_sql.apply_migrations()[0] == "0001.initial_schema"
    async with await stratus_sql.connect() as db:
        assert db.dialect == "sqlite"
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        assert await users.get_user(db, user.user_id) == user
    assert (tmp_path / "stratus.db").is_file()


async def test_statements_from_other_tasks_in_a_transaction_are_refused(db: Database) -> None:
    address = email()
    with pytest.raises(UsageError, match="another task"):
        async with db.transaction() as tx:
            await users.create_user(tx, name="Ana", email=address, role="pilot")
            await asyncio.gather(*(users.get_user(tx, uuid.uuid4()) for _ in range(3)))
    assert await users.get_user_by_email(db, address) is None  # rolled back, pool usable


async def test_a_task_made_inside_a_transaction_uses_the_pool_once_it_ends(db: Database) -> None:
    address = email()
    gate = asyncio.Event()

    async def later() -> User:
        await gate.wait()
        return await users.create_user(db, name="Depois", email=address, role="pilot")

    async with db.transaction():
        task = asyncio.get_running_loop().create_task(later())
    gate.set()
    created = await task
    assert await users.get_user(db, created.user_id) == created


async def test_a_transaction_handle_is_closed_after_its_block(db: Database) -> None:
    async with db.transaction() as tx:
        pass
    with pytest.raises(UsageError, match="ended"):
        await users.get_user(tx, uuid.uuid4())


async def test_an_error_caught_inside_a_transaction_still_rolls_it_back(db: Database) -> None:
    taken, fresh = email(), email()
    await users.create_user(db, name="Ana", email=taken, role="pilot")
    with pytest.raises(UsageError, match="rolled back"):
        async with db.transaction() as tx:
            await users.create_user(tx, name="Bia", email=fresh, role="pilot")
            with contextlib.suppress(AlreadyExists):
                await users.create_user(tx, name="Dup", email=taken, role="pilot")
    assert await users.get_user_by_email(db, fresh) is None


async def test_an_expected_failure_goes_in_a_savepoint(db: Database) -> None:
    taken, fresh, after = email(), email(), email()
    await users.create_user(db, name="Ana", email=taken, role="pilot")
    async with db.transaction() as tx:
        await users.create_user(tx, name="Bia", email=fresh, role="pilot")
        with contextlib.suppress(AlreadyExists):
            async with tx.transaction() as savepoint:
                await users.create_user(savepoint, name="Dup", email=taken, role="pilot")
        await users.create_user(tx, name="Caio", email=after, role="pilot")
    assert await users.get_user_by_email(db, fresh) is not None
    assert await users.get_user_by_email(db, after) is not None


async def test_an_error_caught_inside_a_savepoint_rolls_back_only_the_savepoint(
    db: Database,
) -> None:
    taken, fresh, lost = email(), email(), email()
    await users.create_user(db, name="Ana", email=taken, role="pilot")
    async with db.transaction() as tx:
        await users.create_user(tx, name="Bia", email=fresh, role="pilot")
        with pytest.raises(UsageError, match="rolled back"):
            async with tx.transaction() as savepoint:
                await users.create_user(savepoint, name="Perdido", email=lost, role="pilot")
                with contextlib.suppress(AlreadyExists):
                    await users.create_user(savepoint, name="Dup", email=taken, role="pilot")
    assert await users.get_user_by_email(db, fresh) is not None
    assert await users.get_user_by_email(db, lost) is None


SHORT_ROW = adhoc(
    "short_row :one -> User",
    postgres="SELECT 'only one column'",
    sqlite="SELECT 'only one column'",
)
# A stored user's row, but for a role no UserRole holds.
ODD_ROW_SQL = """
SELECT user_id, name, email, 'no-such-role', licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE user_id = :user_id
"""
ODD_ROW = adhoc("odd_row :one -> User", postgres=ODD_ROW_SQL, sqlite=ODD_ROW_SQL)


async def test_a_row_that_does_not_fit_its_record_is_a_database_error(db: Database) -> None:
    with pytest.raises(DatabaseError, match="1 columns for 9 fields"):
        await db.fetch_one(User, SHORT_ROW)
    user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    with pytest.raises(DatabaseError, match="role"):
        await db.fetch_one(User, ODD_ROW, user_id=user.user_id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"user_id": "bob"}, "user_id"),
        ({"ip_address": "not-an-ip"}, "ip_address"),
        ({"ip_address": "300.1.1.1"}, "ip_address"),
        ({"user_agent": "x" * 1001}, "user_agent"),
        ({"user_agent": "bad\x00agent"}, "user_agent"),
    ],
)
def test_actor_rejects_bad_values(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(stratus_sql.InvalidInput, match=field):
        # Actor takes the text of a UUID too, but its field is typed as the UUID it keeps.
        Actor(**kwargs)  # type: ignore[arg-type]


def test_actor_normalizes_its_values() -> None:
    user_id = uuid.uuid4()
    # Actor takes the text of a UUID too, but its field is typed as the UUID it keeps.
    actor = Actor(user_id=str(user_id), ip_address="2001:DB8::0001")  # type: ignore[arg-type]
    assert actor.user_id == user_id
    assert actor.ip_address == "2001:db8::1"


async def test_waiting_for_a_pooled_connection_is_bounded(pg_url: str) -> None:
    settings = stratus_sql.Settings.load(pool_min_size=1, pool_max_size=1, pool_timeout=0.5)
    async with await stratus_sql.connect(pg_url, settings=settings) as db:
        started = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with db.transaction():
                started.set()
                await release.wait()

        holder = asyncio.get_running_loop().create_task(hold())
        await started.wait()
        began = time.monotonic()
        with pytest.raises(stratus_sql.PoolExhausted, match="no free connection"):
            await users.get_user(db, uuid.uuid4())
        assert time.monotonic() - began < 2
        release.set()
        await holder
        assert await users.get_user(db, uuid.uuid4()) is None


async def test_waiting_for_the_sqlite_writer_is_bounded(sqlite_url: str) -> None:
    settings = stratus_sql.Settings.load(busy_timeout_ms=300)
    async with await stratus_sql.connect(sqlite_url, settings=settings) as db:
        started = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with db.transaction():
                started.set()
                await release.wait()

        holder = asyncio.get_running_loop().create_task(hold())
        await started.wait()
        refused = email()
        with pytest.raises(stratus_sql.Conflict, match="DB_BUSY_TIMEOUT_MS"):
            await users.create_user(db, name="Ana", email=refused, role="pilot")
        release.set()
        await holder
        created = await users.create_user(db, name="Ana", email=email(), role="pilot")
        assert await users.get_user(db, created.user_id) == created
        assert await users.get_user_by_email(db, refused) is None


async def test_datetimes_far_from_now_compare_alike_on_both_backends(db: Database) -> None:
    from stratus_sql.queries import conversations

    user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    c = await conversations.create_conversation(db, user_id=user.user_id, title="t")
    await conversations.add_message(
        db,
        conversation_id=c.conversation_id,
        user_id=user.user_id,
        content="x",
        message_type="system",
    )
    before_year_1000 = conversations.message_cursor(datetime(999, 1, 1, tzinfo=UTC), uuid.uuid4())
    page = await conversations.list_messages(db, c.conversation_id, before=before_year_1000)
    assert page.items == []
    after_year_9000 = conversations.message_cursor(datetime(9000, 1, 1, tzinfo=UTC), uuid.uuid4())
    assert (
        len(
            (await conversations.list_messages(db, c.conversation_id, before=after_year_9000)).items
        )
        == 1
    )
    an_hour_east = timezone(timedelta(hours=1))
    out_of_range = conversations.message_cursor(
        datetime(1, 1, 1, tzinfo=an_hour_east), uuid.uuid4()
    )
    with pytest.raises(stratus_sql.InvalidInput):
        await conversations.list_messages(db, c.conversation_id, before=out_of_range)


async def test_a_cancelled_statement_dooms_its_transaction(db: Database) -> None:
    address = email()
    with pytest.raises(UsageError, match="rolled back"):
        async with db.transaction() as tx:
            await users.create_user(tx, name="Ana", email=address, role="pilot")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0):
                    await users.get_user(tx, uuid.uuid4())
    assert await users.get_user_by_email(db, address) is None


async def test_a_query_on_an_unmigrated_database_names_the_migrate_command(
    blank_url: str,
) -> None:
    async with await stratus_sql.connect(blank_url) as db:
        with pytest.raises(DatabaseError, match=r"schema is missing.*run stratus-sql migrate"):
            await users.get_user(db, uuid.uuid4())


FORGETS_CLOSE = """
import asyncio, sys, uuid, stratus_sql
from stratus_sql.queries import users
async def main():
    db = await stratus_sql.connect(sys.argv[1])
    try:
        await users.get_user(db, uuid.uuid4())
    except stratus_sql.DatabaseError as exc:
        print(exc)
asyncio.run(main())
"""


def test_a_process_that_forgets_close_on_sqlite_still_exits(
    new_sqlite_database: Callable[[], str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORGETS_CLOSE, new_sqlite_database()],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "run stratus-sql migrate" in done.stdout
