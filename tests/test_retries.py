"""Transient failures caused for real: backends terminated mid-statement and mid-COMMIT, a
deadlock between two transactions; what is retried, what is not, and the retry counts."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

import stratus_sql
from stratus_sql import Executor
from stratus_sql.queries import users
from stratus_sql.records import User

T = TypeVar("T")


def email() -> str:
    return f"r.{uuid.uuid4().hex[:12]}@example.com"


async def _wait_for_backend(admin: asyncpg.Connection, where: str) -> int:
    """The pid of the one backend of this database matching `where`, once it shows."""
    for _ in range(200):
        pids = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            f" AND pid <> pg_backend_pid() AND {where}"
        )
        if len(pids) == 1:
            pid: int = pids[0]["pid"]
            return pid
        await asyncio.sleep(0.025)
    raise AssertionError(f"no single backend with {where}")


async def test_idle_pool_connections_terminated_the_next_calls_succeed(
    pg_url: str,
) -> None:
    url = pg_url
    settings = stratus_sql.Settings.load(pool_min_size=4, pool_max_size=4)
    async with await stratus_sql.connect(url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        admin = await asyncpg.connect(url)
        try:
            pids = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name NOT LIKE 'stratus%'"
            )
            assert len(pids) >= 4
        finally:
            await admin.close()
        results = await asyncio.gather(*(users.get_user(db, user.user_id) for _ in range(40)))
        assert results == [user] * 40
        assert db.stats()["get_user"].errors == 0


async def _terminated_while_waiting(
    url: str, lock: str, call: Callable[[], Awaitable[T]], *args: object
) -> asyncio.Future[T]:
    """Start `call()` while `lock` (run in another session) makes it wait, so it is surely
    running on the server; terminate its backend, release the lock, and return the call."""
    admin = await asyncpg.connect(url)
    try:
        locking = admin.transaction()
        await locking.start()
        await admin.execute(lock, *args)
        running = asyncio.ensure_future(call())
        pid = await _wait_for_backend(admin, "wait_event_type = 'Lock'")
        await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await locking.rollback()
    finally:
        await admin.close()
    return running


@pytest.fixture
async def pg_db(pg_url: str) -> AsyncIterator[stratus_sql.Database]:
    """The Postgres test database on a small pool (the listener has its own connection)."""
    settings = stratus_sql.Settings.load(pool_min_size=1, pool_max_size=2)
    async with await stratus_sql.connect(pg_url, settings=settings) as db:
        yield db


async def test_a_read_whose_backend_is_terminated_mid_statement_is_retried_once(
    pg_db: stratus_sql.Database,
) -> None:
    user = await users.create_user(pg_db, name="Ana", email=email(), role="pilot")
    read = await _terminated_while_waiting(
        pg_db.settings.database_url,
        "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
        lambda: users.get_user(pg_db, user.user_id),
    )
    assert await read == user
    assert pg_db.stats()["get_user"].retries == 1
    assert pg_db.stats()["get_user"].errors == 0


async def test_a_write_whose_backend_is_terminated_mid_statement_raises_commit_unknown(
    pg_db: stratus_sql.Database,
) -> None:
    user = await users.create_user(pg_db, name="Ana", email=email(), role="pilot")
    write = await _terminated_while_waiting(
        pg_db.settings.database_url,
        "SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE",
        lambda: users.update_preferences(pg_db, user.user_id, {"a": 1}),
        user.user_id,
    )
    with pytest.raises(stratus_sql.CommitUnknown) as raised:
        await write
    assert isinstance(raised.value.__cause__, stratus_sql.DatabaseUnavailable)
    assert pg_db.stats()["update_preferences"].retries == 0
    # Reading back is how a caller resolves it: here the update never committed.
    assert (await users.get_user(pg_db, user.user_id)) == user


async def test_run_transaction_reruns_the_loser_of_a_deadlock(
    pg_url: str,
) -> None:
    settings = stratus_sql.Settings.load(pool_min_size=2, pool_max_size=4)
    async with await stratus_sql.connect(pg_url, settings=settings) as db:
        first = await users.create_user(db, name="Ana", email=email(), role="pilot")
        second = await users.create_user(db, name="Bia", email=email(), role="pilot")
        holding = {first.user_id: asyncio.Event(), second.user_id: asyncio.Event()}
        runs: list[str] = []

        def crossing(mine: User, theirs: User) -> Callable[[Executor], Awaitable[str]]:
            async def move(tx: Executor) -> str:
                runs.append(mine.name)
                await users.update_preferences(tx, mine.user_id, {"by": mine.name})
                holding[mine.user_id].set()
                await holding[theirs.user_id].wait()  # both hold one row: a deadlock
                await users.update_preferences(tx, theirs.user_id, {"by": mine.name})
                return mine.name

            return move

        done = await asyncio.gather(
            db.run_transaction(crossing(first, second)),
            db.run_transaction(crossing(second, first)),
        )
        assert list(done) == ["Ana", "Bia"]
        assert len(runs) == 3  # two first attempts and one rerun
        retries = {k: v.retries for k, v in db.stats().items() if k.startswith("run_transaction")}
        assert sum(retries.values()) == 1
        # The rerun went last and wrote both rows.
        winner = runs[-1]
        for user_id in holding:
            refreshed = await users.get_user(db, user_id)
            assert refreshed is not None
            assert refreshed.preferences == {"by": winner}


async def _slow_commits(url: str) -> None:
    """A deferred constraint trigger runs inside COMMIT: it holds COMMIT open (for 30 s) when
    a user named 'Commit Lento' was inserted."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            """
            CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON users
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            WHEN (NEW.name = 'Commit Lento') EXECUTE FUNCTION slow_commit();
            """
        )
    finally:
        await admin.close()


@pytest.fixture
def slow_commit_url(new_pg_database: Callable[[], str]) -> str:
    url = new_pg_database()
    stratus_sql.apply_migrations(url)
    asyncio.run(_slow_commits(url))
    return url


async def _create_slowly(tx: Executor) -> User:
    return await users.create_user(tx, name="Commit Lento", email=_SLOW, role="pilot")


_SLOW = "commit.lento@example.com"


async def test_a_connection_lost_while_commit_is_in_flight_raises_commit_unknown(
    slow_commit_url: str,
) -> None:
    admin = await asyncpg.connect(slow_commit_url)
    try:
        async with await stratus_sql.connect(slow_commit_url) as db:
            attempt = asyncio.ensure_future(db.run_transaction(_create_slowly))
            pid = await _wait_for_backend(admin, "query ILIKE 'COMMIT%' AND state = 'active'")
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(stratus_sql.CommitUnknown):
                await attempt
            assert not any(k.startswith("run_transaction") for k in db.stats())
            # Terminated before its commit record was written: nothing was stored.
            assert await users.get_user_by_email(db, _SLOW) is None
    finally:
        await admin.close()


async def test_a_commit_that_times_out_raises_commit_unknown(slow_commit_url: str) -> None:
    settings = stratus_sql.Settings.load(command_timeout=0.5)
    async with await stratus_sql.connect(slow_commit_url, settings=settings) as db:
        with pytest.raises(stratus_sql.CommitUnknown) as raised:
            await db.run_transaction(_create_slowly)
        assert isinstance(raised.value.__cause__, stratus_sql.QueryTimeout)
        assert not any(k.startswith("run_transaction") for k in db.stats())


async def test_run_transaction_returns_the_result_and_does_not_retry_lasting_errors(
    db: stratus_sql.Database,
) -> None:
    address = email()

    async def create(tx: Executor) -> User:
        return await users.create_user(tx, name="Ana", email=address, role="pilot")

    created = await db.run_transaction(create, actor=stratus_sql.Actor(ip_address="10.0.0.1"))
    assert await users.get_user(db, created.user_id) == created
    with pytest.raises(stratus_sql.AlreadyExists):
        await db.run_transaction(create)
    assert not any(k.startswith("run_transaction") for k in db.stats())


async def test_primary_reads_are_the_same_reads_and_in_transaction_tells(
    db: stratus_sql.Database, user: User
) -> None:
    # Without a replica, db.primary() changes nowhere a read goes, on any backend.
    assert not db.in_transaction
    with db.primary():
        assert await users.get_user(db, user.user_id) == user
    async with db.transaction() as tx:
        assert db.in_transaction
        with db.primary():
            assert await users.get_user(tx, user.user_id) == user
    assert not db.in_transaction


async def test_run_transaction_inside_an_open_transaction_is_refused(
    db: stratus_sql.Database,
) -> None:
    async def nothing(tx: Executor) -> None:
        return None

    async with db.transaction():
        with pytest.raises(stratus_sql.UsageError, match="inside an open transaction"):
            await db.run_transaction(nothing)


def test_retry_attempts_is_configurable_and_validated() -> None:
    settings = stratus_sql.Settings.load(environ={"DB_RETRY_ATTEMPTS": "0"}, env_file=None)
    assert settings.retry_attempts == 0
    with pytest.raises(stratus_sql.ConfigError, match="DB_RETRY_ATTEMPTS"):
        stratus_sql.Settings.load(environ={"DB_RETRY_ATTEMPTS": "-1"}, env_file=None)


async def test_sqlite_write_refused_as_busy_is_retried_and_counted(
    new_sqlite_database: Callable[[], str],
) -> None:
    url = new_sqlite_database()
    stratus_sql.apply_migrations(url)
    path = url.removeprefix("sqlite:///")
    # Another connection holds the write lock for longer than one busy_timeout.
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        settings = stratus_sql.Settings.load(busy_timeout_ms=100, retry_attempts=0)
        async with await stratus_sql.connect(url, settings=settings) as db:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(stratus_sql.Conflict) as refused:
                await users.create_user(db, name="Ana", email=email(), role="pilot")
            assert refused.value.retryable
            holder.execute("ROLLBACK")

        settings = stratus_sql.Settings.load(busy_timeout_ms=100, retry_attempts=10)
        async with await stratus_sql.connect(url, settings=settings) as db:
            holder.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.4, holder.execute, "ROLLBACK")
            async with db.transaction() as tx:
                created = await users.create_user(tx, name="Ana", email=email(), role="pilot")
            assert await users.get_user(db, created.user_id) == created
            assert db.stats()["BEGIN IMMEDIATE"].retries >= 1

            holder.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.4, holder.execute, "ROLLBACK")
            alone = await users.create_user(db, name="Bia", email=email(), role="pilot")
            assert await users.get_user(db, alone.user_id) == alone
            assert db.stats()["create_user"].retries >= 1

            # A second writer of this process waits on the first past busy_timeout: nothing
            # of it ran, so run_transaction tries it again.
            async def create(tx: Executor) -> User:
                return await users.create_user(tx, name="Caio", email=email(), role="pilot")

            holder.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.4, holder.execute, "ROLLBACK")
            first, second = await asyncio.gather(
                users.create_user(db, name="Dani", email=email(), role="pilot"),
                db.run_transaction(create),
            )
            assert await users.get_user(db, second.user_id) == second
            assert await users.get_user(db, first.user_id) == first
    finally:
        holder.close()


async def test_a_transaction_cancelled_while_begin_waits_leaves_the_sqlite_writer_clean(
    new_sqlite_database: Callable[[], str],
) -> None:
    url = new_sqlite_database()
    stratus_sql.apply_migrations(url)
    path = url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        settings = stratus_sql.Settings.load(busy_timeout_ms=1500, retry_attempts=0)
        async with await stratus_sql.connect(url, settings=settings) as db:
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock

            async def waits_for_begin() -> None:
                async with db.transaction():
                    raise AssertionError("BEGIN cannot have succeeded while the lock is held")

            waiting = asyncio.get_running_loop().create_task(waits_for_begin())
            await asyncio.sleep(0.3)  # BEGIN IMMEDIATE is waiting on the busy timeout
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            holder.execute("ROLLBACK")

            # The cancelled BEGIN ran to its end on the connection's thread; the writer must
            # not be left inside that transaction, swallowing the writes that follow.
            alone = await users.create_user(db, name="Ana", email=email(), role="pilot")
            async with db.transaction() as tx:
                other = await users.create_user(tx, name="Bia", email=email(), role="pilot")
        seen = {row[0] for row in holder.execute("SELECT user_id FROM users").fetchall()}
        assert {str(alone.user_id), str(other.user_id)} <= seen
    finally:
        holder.close()
