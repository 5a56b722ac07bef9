"""A private PostgreSQL cluster, started in a temporary directory on its own port, restarted
and stopped under a connected Database: the next calls succeed without the caller seeing an
error, and the retries are counted."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import BaseModel

import stratus_sql
from stratus_sql.queries import users
from tests import servers
from tests.checks import adhoc, present
from tests.servers import Cluster, LegServers


@pytest.fixture(scope="module")
def cluster(test_servers: LegServers, pg_leg: str) -> Iterator[Cluster]:
    """A private cluster of the same server binaries as the leg's."""
    with servers.private_cluster(test_servers.bindir(pg_leg)) as made:
        stratus_sql.apply_migrations(made.url)
        yield made


def email() -> str:
    return f"c.{uuid.uuid4().hex[:12]}@example.com"


async def test_after_a_server_restart_the_next_calls_succeed(cluster: Cluster) -> None:
    settings = stratus_sql.Settings.load(pool_min_size=3, pool_max_size=3)
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        await asyncio.to_thread(cluster.pg_ctl, "restart", "-m", "fast")
        results = await asyncio.gather(*(users.get_user(db, user.user_id) for _ in range(20)))
        assert results == [user] * 20
        again = await users.create_user(db, name="Bia", email=email(), role="pilot")
        assert await users.get_user(db, again.user_id) == again
        assert db.stats()["get_user"].errors == 0


async def test_a_read_made_while_the_server_is_down_waits_for_it_and_is_counted(
    cluster: Cluster,
) -> None:
    settings = stratus_sql.Settings.load(pool_min_size=1, pool_max_size=2, retry_attempts=20)
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        await asyncio.to_thread(cluster.pg_ctl, "stop", "-m", "fast")
        starting = threading.Timer(0.5, cluster.pg_ctl, ["start"])
        starting.start()
        try:
            assert await users.get_user(db, user.user_id) == user
        finally:
            starting.join()
        assert db.stats()["get_user"].retries >= 1
        assert db.stats()["get_user"].errors == 0


async def test_with_retries_off_a_read_while_the_server_is_down_fails_naming_it(
    cluster: Cluster,
) -> None:
    settings = stratus_sql.Settings.load(pool_min_size=1, pool_max_size=1, retry_attempts=0)
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        await asyncio.to_thread(cluster.pg_ctl, "stop", "-m", "fast")
        try:
            with pytest.raises(stratus_sql.DatabaseUnavailable, match=f"127.0.0.1:{cluster.port}"):
                await users.get_user(db, user.user_id)
        finally:
            await asyncio.to_thread(cluster.pg_ctl, "start")
        assert await users.get_user(db, user.user_id) == user


@pytest.fixture(scope="module")
def replica(cluster: Cluster) -> Iterator[Cluster]:
    """A streaming replica of `cluster`, made with pg_basebackup -R, on another port."""
    with servers.replica_of(cluster) as made:
        yield made


async def _paused(replica: Cluster) -> asyncpg.Connection:
    """A connection to the replica with WAL replay paused: it stops seeing new writes."""
    admin = await asyncpg.connect(replica.url)
    await admin.execute("SELECT pg_wal_replay_pause()")
    for _ in range(200):
        if await admin.fetchval("SELECT pg_get_wal_replay_pause_state()") == "paused":
            return admin
        await asyncio.sleep(0.025)
    raise AssertionError("replay did not pause")


async def test_reads_go_to_the_replica_and_the_primary_serves_read_your_writes(
    cluster: Cluster, replica: Cluster
) -> None:
    settings = stratus_sql.Settings.load(database_url=cluster.url, replica_url=replica.url)
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        admin = await _paused(replica)
        try:
            user = await users.create_user(db, name="Ana", email=email(), role="pilot")
            assert await users.get_user(db, user.user_id) is None  # the replica lags
            with db.primary():
                assert await users.get_user(db, user.user_id) == user
            async with db.transaction() as tx:
                assert await users.get_user(tx, user.user_id) == user
        finally:
            await admin.execute("SELECT pg_wal_replay_resume()")
            await admin.close()
        for _ in range(200):  # caught up again
            if await users.get_user(db, user.user_id) == user:
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the replica never caught up")


async def test_with_the_replica_down_reads_fall_back_to_the_primary_and_say_so_once(
    cluster: Cluster, replica: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    settings = stratus_sql.Settings.load(database_url=cluster.url, replica_url=replica.url)
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        await asyncio.to_thread(replica.pg_ctl, "stop", "-m", "fast")
        try:
            with caplog.at_level(logging.WARNING, logger="stratus_sql"):
                for _ in range(3):
                    assert await users.get_user(db, user.user_id) == user
        finally:
            await asyncio.to_thread(replica.pg_ctl, "start")
    said = [r for r in caplog.records if "replica unavailable" in r.getMessage()]
    assert len(said) == 1
    assert f"127.0.0.1:{replica.port}" in said[0].getMessage()


class Recovery(BaseModel):
    in_recovery: bool


# Rows of a server, and a scalar of it: the replica says it is in recovery, the primary not.
RECOVERY_ROW = adhoc(
    "recovery_row :one -> Recovery",
    postgres="SELECT pg_is_in_recovery() AS in_recovery FROM pg_sleep(:seconds);",
)
RECOVERY_VALUE = adhoc("recovery_value :scalar", postgres="SELECT pg_is_in_recovery();")


async def test_only_rows_come_from_the_replica_never_a_scalar(
    cluster: Cluster, replica: Cluster
) -> None:
    settings = stratus_sql.Settings.load(database_url=cluster.url, replica_url=replica.url)
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        row = present(await db.fetch_one(Recovery, RECOVERY_ROW, seconds=0))
        assert row.in_recovery  # a :one read: the replica
        assert await db.fetch_scalar(RECOVERY_VALUE) is False  # a :scalar: the primary
        assert (await db.health()).healthy


async def test_a_read_cut_off_on_the_replica_goes_to_the_primary_without_a_retry(
    cluster: Cluster, replica: Cluster
) -> None:
    settings = stratus_sql.Settings.load(
        database_url=cluster.url, replica_url=replica.url, retry_attempts=0
    )
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        admin = await asyncpg.connect(replica.url)
        try:
            slow = asyncio.get_running_loop().create_task(
                db.fetch_one(Recovery, RECOVERY_ROW, seconds=2)
            )
            for _ in range(200):  # until the read runs on the replica, then cut it off
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
                )
                if killed:
                    break
                await asyncio.sleep(0.01)
            assert killed == 1
            row = present(await slow)
            assert not row.in_recovery  # answered by the primary, with no retry budget
        finally:
            await admin.close()


async def test_a_replica_or_listen_url_needs_postgres(tmp_path: Path) -> None:
    with pytest.raises(stratus_sql.ConfigError, match="DATABASE_REPLICA_URL"):
        stratus_sql.Settings.load(environ={"DATABASE_REPLICA_URL": "mysql://h/d"}, env_file=None)
    for settings in (
        stratus_sql.Settings.load(replica_url="postgresql://h/d"),
        stratus_sql.Settings.load(listen_url="postgresql://h/d"),
    ):
        with pytest.raises(stratus_sql.ConfigError, match="only to a PostgreSQL"):
            await stratus_sql.connect(f"sqlite:///{tmp_path}/x.db", settings=settings)


def _cluster_processes(cluster: Cluster) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = cluster.postmaster_pid()
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *map(int, children)]


async def test_a_hung_server_gives_typed_errors_and_writes_learn_their_outcome_is_unknown(
    cluster: Cluster,
) -> None:
    settings = stratus_sql.Settings.load(
        pool_min_size=4, pool_max_size=4, command_timeout=2, pool_timeout=2, retry_attempts=1
    )
    async with await stratus_sql.connect(cluster.url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        hung = _cluster_processes(cluster)
        for pid in hung:
            os.kill(pid, signal.SIGSTOP)
        try:
            reads = [users.get_user(db, user.user_id) for _ in range(9)]
            writes = [users.update_preferences(db, user.user_id, {"i": i}) for i in range(5)] + [
                users.create_user(db, name="Bia", email=email(), role="pilot") for _ in range(4)
            ]
            async with asyncio.timeout(60):
                outcomes = await asyncio.gather(*writes, *reads, return_exceptions=True)
        finally:
            for pid in hung:
                os.kill(pid, signal.SIGCONT)
        write_outcomes, read_outcomes = outcomes[:9], outcomes[9:]
        assert all(
            isinstance(o, stratus_sql.QueryTimeout | stratus_sql.DatabaseUnavailable)
            for o in read_outcomes
        ), read_outcomes
        # A write either never left (no connection) or its caller is told it may have landed.
        for outcome in write_outcomes:
            assert isinstance(outcome, stratus_sql.CommitUnknown) or (
                isinstance(outcome, stratus_sql.DatabaseUnavailable) and not outcome.in_flight
            ), repr(outcome)
        assert any(isinstance(o, stratus_sql.CommitUnknown) for o in write_outcomes)
        # Once the server runs again, so does the pool.
        assert await users.get_user(db, user.user_id) == user
