"""The driver interface: a driver of a derived dialect plugs in, errors carry their SQLSTATE."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import stratus_sql
from stratus_sql import AlreadyExists, ConfigError, Database, NotFound, Settings
from stratus_sql.config import backend_of
from stratus_sql.database import Database as ConnectedDatabase
from stratus_sql.drivers.deadlines import Deadlines
from stratus_sql.drivers.postgres import PostgresDriver
from stratus_sql.queries import conversations, users
from stratus_sql.sqlfiles import Dialect, dialects, register_dialect, unregister_dialect
from tests.checks import adhoc

SHOUTING_GET_USER = """\
-- name: get_user :one -> User
-- One user by id, the name in capitals: the one statement this dialect changes.
SELECT user_id, upper(name) AS name, email, role, licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE user_id = :user_id;
"""


class ShoutingDriver(PostgresDriver):
    """PostgreSQL, speaking a dialect of its own."""

    dialect = "shouting"


@pytest.fixture
def shouting(tmp_path: Path) -> Iterator[None]:
    (tmp_path / "shouting").mkdir()
    (tmp_path / "shouting" / "users.sql").write_text(SHOUTING_GET_USER)
    register_dialect(
        Dialect("shouting", "numbered", base="postgres", root=tmp_path, schemes=("shout://",))
    )
    try:
        yield
    finally:
        unregister_dialect("shouting")
    assert "shouting" not in dialects()


async def test_a_driver_of_a_derived_dialect_runs_its_statements_and_inherits_the_rest(
    pg_url: str, shouting: None
) -> None:
    settings = Settings.load(database_url=pg_url, memory_cache_size=0)
    db = ConnectedDatabase(await ShoutingDriver.open(settings))
    try:
        assert db.dialect == "shouting"
        email = f"grito.{uuid.uuid4().hex[:8]}@example.com"
        created = await users.create_user(db, name="Ana Souza", email=email, role="pilot")
        assert created.name == "Ana Souza"  # create_user is postgres's
        found = await users.get_user(db, created.user_id)
        assert found is not None
        assert found.name == "ANA SOUZA"  # get_user is the dialect's own
        chat = await conversations.create_conversation(db, user_id=created.user_id, title="t")
        assert (await conversations.get_conversation(db, chat.conversation_id)) == chat
    finally:
        await db.close()


def test_a_registered_dialect_names_its_urls(shouting: None) -> None:
    assert backend_of("shout://db.example/prod") == "shouting"
    assert backend_of("postgresql://db.example/prod") == "postgres"
    with pytest.raises(ConfigError, match="shout://"):
        backend_of("mysql://db.example/prod")


async def test_errors_carry_the_sqlstate_and_constraint_as_attributes(db: Database) -> None:
    email = f"estado.{uuid.uuid4().hex[:8]}@example.com"
    await users.create_user(db, name="Ana", email=email, role="pilot")
    with pytest.raises(AlreadyExists) as taken:
        await users.create_user(db, name="Bia", email=email, role="pilot")
    assert taken.value.constraint == "users_email_key"
    with pytest.raises(NotFound) as missing:
        await conversations.create_conversation(db, user_id=uuid.uuid4(), title="x")
    if db.dialect == "postgres":
        assert (taken.value.sqlstate, missing.value.sqlstate) == ("23505", "23503")
        assert missing.value.constraint == "conversations_user_id_fkey"
        assert "[" not in str(taken.value)  # the state is an attribute, not message text
    else:  # SQLite has no SQLSTATE
        assert (taken.value.sqlstate, missing.value.sqlstate) == (None, None)


async def test_a_scoped_transaction_needs_a_driver_with_roles(sqlite_url: str) -> None:
    async with await stratus_sql.connect(sqlite_url) as db:
        with pytest.raises(stratus_sql.UsageError, match="need PostgreSQL"):
            async with db.transaction(scoped=True):
                pass


async def test_deadlines_turn_a_wait_past_its_deadline_into_a_timeout() -> None:
    deadlines = Deadlines()
    started = time.monotonic()
    with pytest.raises(TimeoutError), deadlines.bound(0.05):
        await asyncio.sleep(5)
    assert time.monotonic() - started < 1
    with deadlines.bound(5):  # a wait that ends in time is left alone
        await asyncio.sleep(0)
    deadlines.close()


async def test_deadlines_let_a_cancel_from_elsewhere_through() -> None:
    deadlines = Deadlines()

    async def waits() -> None:
        with deadlines.bound(5):
            await asyncio.sleep(5)

    task = asyncio.get_running_loop().create_task(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()


async def test_on_commit_runs_once_committed_and_never_after_a_rollback(db: Database) -> None:
    seen: list[str] = []
    db.on_commit(lambda: seen.append("now"))  # no transaction: at once
    assert seen == ["now"]
    async with db.transaction() as tx:
        tx.on_commit(lambda: seen.append("committed"))
        async with tx.transaction() as savepoint:
            savepoint.on_commit(lambda: seen.append("savepoint"))
        db.on_commit(lambda: seen.append("through db"))
        assert seen == ["now"]  # nothing before the outermost COMMIT
    assert seen == ["now", "committed", "savepoint", "through db"]
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            tx.on_commit(lambda: seen.append("rolled back"))
            raise RuntimeError("undo")
    assert seen == ["now", "committed", "savepoint", "through db"]


NOTIFY = adhoc("notify :exec", postgres="SELECT pg_notify('stratus_tests', :payload);")


async def test_listen_delivers_notices_where_the_driver_has_them(db: Database) -> None:
    heard: list[str] = []
    states: list[bool] = []
    listening = await db.listen("stratus_tests", heard.append, states.append)
    if db.dialect == "sqlite":
        assert listening is False  # SQLite has no notifications: nothing to listen on
        return
    assert listening is True
    assert states == [True]
    await db.execute(NOTIFY, payload="olá")
    for _ in range(200):
        if heard:
            break
        await asyncio.sleep(0.01)
    assert heard == ["olá"]


async def test_before_close_hooks_run_before_the_connections_close(database_url: str) -> None:
    db = await stratus_sql.connect(database_url)
    ran: list[str] = []

    async def hook() -> None:
        ran.append(str(await db.fetch_scalar(VERSION)))  # the database still answers

    db.before_close(hook)
    await db.close()
    assert len(ran) == 1
    assert ran[0]
    assert db.closed


VERSION = adhoc("version :scalar", postgres="SELECT version();", sqlite="SELECT sqlite_version();")
