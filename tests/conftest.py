"""Fixtures: a migrated throwaway database per backend, and `db`, parametrized over both.

Postgres comes, in this order, from STRATUS_TEST_DATABASE_URL (a server URL in which we may
create databases), a testcontainers Postgres when a Docker engine answers, or the local
server on 127.0.0.1:5432. Every test database is created for this run, named
stratus_test_<random>, and dropped at the end; nothing else on the server is touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import stratus_sql
from stratus_sql import Database
from stratus_sql.queries import users
from stratus_sql.records import User

LOCAL_SERVER = "postgresql://root@127.0.0.1:5432/postgres"
# "pgbouncer": the same PostgreSQL database reached through PgBouncer in transaction pooling.
BACKENDS = ("postgres", "sqlite", "pgbouncer")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a Postgres server database from which test databases are created."""
    url = os.environ.get("STRATUS_TEST_DATABASE_URL")
    if url:
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
    else:
        yield LOCAL_SERVER


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(server: str) -> psycopg.Connection:
    try:
        return psycopg.connect(server, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"no Postgres for the tests at {server.split('@')[-1]}: {exc}\n"
            "Set STRATUS_TEST_DATABASE_URL, run a Docker engine, or start the local server "
            "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)."
        )


@pytest.fixture(scope="session")
def new_pg_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """Makes empty throwaway databases; all of them are dropped at the end of the run."""
    created: list[str] = []

    def make() -> str:
        name = f"stratus_test_{secrets.token_hex(6)}"
        with _admin(pg_server) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(pg_server, name)

    yield make
    with _admin(pg_server) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def new_sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """Makes URLs of fresh SQLite files in a temporary directory."""

    def make() -> str:
        path = tmp_path_factory.mktemp("sqlite") / "stratus.db"
        return f"sqlite:///{path}"

    return make


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Debian's PgBouncer in transaction pooling mode in front of the test server, on a free
    loopback port; yields the port."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.fail("pgbouncer not found: install Debian's package (apt-get install pgbouncer)")
    directory = Path(tempfile.mkdtemp(prefix="stratus_pgbouncer_"))
    server = urlsplit(pg_server)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    user = server.username or "root"
    (directory / "users.txt").write_text(f'"{user}" "{server.password or ""}"\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = {'plain' if server.password else 'trust'}\n"
        f"auth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 40\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {directory / 'log'}\npidfile = {directory / 'pid'}\n"
    )
    command = [binary, "-d", str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(directory, "postgres")
        for name in ("users.txt", "pgbouncer.ini"):
            shutil.chown(directory / name, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield port
    finally:
        pid = int((directory / "pid").read_text())
        os.kill(pid, signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def database_urls(
    new_pg_database: Callable[[], str], new_sqlite_database: Callable[[], str], pgbouncer: int
) -> dict[str, str]:
    """One migrated database per backend, shared by the contract tests of this run."""
    urls = {"postgres": new_pg_database(), "sqlite": new_sqlite_database()}
    for url in urls.values():
        stratus_sql.apply_migrations(url)
    urls["pgbouncer"] = _through(urls["postgres"], pgbouncer)
    return urls


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database_url(
    backend: str, database_urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    if backend == "pgbouncer":
        # Server connections change hands between transactions: no prepared statements
        # can be kept on them (see the README on PgBouncer).
        monkeypatch.setenv("DB_STATEMENT_CACHE_SIZE", "0")
        # ... and no session to LISTEN on: the cache listens on the server directly.
        monkeypatch.setenv("DATABASE_LISTEN_URL", database_urls["postgres"])
    return database_urls[backend]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A connected Database on each backend's migrated test database."""
    database = await stratus_sql.connect(database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def blank_url(
    backend: str, new_pg_database: Callable[[], str], new_sqlite_database: Callable[[], str]
) -> str:
    """A new, empty (unmigrated) database on each backend."""
    return new_sqlite_database() if backend == "sqlite" else new_pg_database()


@pytest.fixture
async def user(db: Database) -> User:
    """A new pilot on the `db` under test."""
    return await users.create_user(
        db, name="João Silva", email=f"joao.{secrets.token_hex(6)}@example.com", role="pilot"
    )
