"""A private PostgreSQL cluster, started in a temporary directory on its own port, restarted
and stopped under a connected Database: the next calls succeed without the caller seeing an
error, and the retries are counted."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import stratus_sql
from stratus_sql.queries import users


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Cluster:
    bindir: Path
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.directory / "data"), str(self.directory / "log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-o", options, *extra, action)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bindir = _postgres_bin()
    if bindir is None:
        pytest.fail("initdb not found: install PostgreSQL's server package")
    directory = Path(tempfile.mkdtemp(prefix="stratus_cluster_"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("run as root, the private cluster needs a 'postgres' system user")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    made = Cluster(bindir, directory, port)
    made._run("initdb", "-D", str(directory / "data"), "-A", "trust", "-U", "postgres", "-N")
    made.pg_ctl("start")
    stratus_sql.apply_migrations(made.url)
    try:
        yield made
    finally:
        try:
            made.pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(directory, ignore_errors=True)


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
