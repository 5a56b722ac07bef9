"""Behaviour of the two backends behind `Database`: storage, transactions, errors."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

import stratus_sql
from stratus_sql import (
    Actor,
    AlreadyExists,
    Database,
    DatabaseUnavailable,
    UsageError,
)
from stratus_sql.queries import users
from stratus_sql.records import User


def email() -> str:
    return f"b.{uuid.uuid4().hex[:12]}@example.com"


async def raw_one(url: str, sql: str, *args: object) -> tuple[object, ...]:
    """One row read straight through the driver, bypassing stratus_sql ($n parameters)."""
    if url.startswith("postgresql"):
        conn = await asyncpg.connect(url)
        try:
            return tuple(await conn.fetchrow(sql, *args))
        finally:
            await conn.close()
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return tuple(conn.execute(re.sub(r"\$\d+", "?", sql), [str(a) for a in args]).fetchone())


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


async def test_sqlite_stores_sortable_utc_text(database_urls: dict[str, str]) -> None:
    database_url = database_urls["sqlite"]
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
    assert all(s.utcoffset() is not None and s.utcoffset().total_seconds() == 0 for s in stamps)


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
            await users.touch_last_active(
                kept,
                (await users.get_user_by_email(kept, outer_email)).user_id,  # type: ignore[union-attr]
            )
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
    database_urls: dict[str, str],
) -> None:
    database_url = database_urls["sqlite"]
    first, second = await stratus_sql.connect(database_url), await stratus_sql.connect(database_url)
    try:

        async def write(db: Database, i: int) -> None:
            async with db.transaction() as tx:
                user = await users.create_user(tx, name=f"L{i}", email=email(), role="pilot")
                await asyncio.sleep(0)
                await users.update_preferences(tx, user.user_id, {"i": i})

        await asyncio.gather(*(write(db, i) for i in range(25) for db in (first, second)))
    finally:
        await first.close()
        await second.close()


async def test_actor_is_set_for_its_transaction_only(database_url: str) -> None:
    settings = stratus_sql.Settings.load(
        database_url=database_url, pool_min_size=1, pool_max_size=1
    )
    async with await stratus_sql.connect(settings=settings) as db:
        actor = Actor(user_id=uuid.uuid4(), ip_address="10.1.2.3", user_agent="stratus-tests/1.0")

        # Read through the transaction's own connection, as the audit triggers will.
        async def seen(tx: object) -> tuple[object, ...]:
            conn = tx._inner._conn  # type: ignore[attr-defined]
            if db.dialect == "postgres":
                row = await conn.fetchrow(
                    "SELECT current_setting('stratus.actor_user_id', true),"
                    " current_setting('stratus.actor_ip', true),"
                    " current_setting('stratus.actor_user_agent', true)"
                )
                return tuple(v or None for v in row)
            cursor = await conn.execute(
                "SELECT stratus_actor('user_id'), stratus_actor('ip_address'),"
                " stratus_actor('user_agent')"
            )
            return tuple(await cursor.fetchone())

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


async def test_concurrent_statements_in_one_postgres_transaction_are_a_usage_error(
    database_urls: dict[str, str],
) -> None:
    async with await stratus_sql.connect(database_urls["postgres"]) as db:
        with pytest.raises(UsageError, match="concurrently"):
            async with db.transaction() as tx:
                await asyncio.gather(*(users.get_user(tx, uuid.uuid4()) for _ in range(5)))
        assert await users.get_user(db, uuid.uuid4()) is None  # the pool is still usable


async def test_a_row_that_does_not_fit_its_record_is_a_usage_error(db: Database) -> None:
    stmt = users.STATEMENTS.get_user.for_dialect(db.dialect)
    decode = db._backend._decoder(stmt, User)
    with pytest.raises(UsageError, match="1 columns for 9 fields"):
        decode(("only one column",))
    row = [str(uuid.uuid4()), "Ana", "a@b.co", "no-such-role", "[]", None, "{}", None, None]
    with pytest.raises(UsageError, match="role"):
        decode(row)
