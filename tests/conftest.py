"""Fixtures: a migrated throwaway database per backend, and `db`, parametrized over both.

Postgres comes, in this order, from STRATUS_TEST_DATABASE_URL (a server URL in which we may
create databases), a testcontainers Postgres when a Docker engine answers, or the local
server on 127.0.0.1:5432. Every test database is created for this run, named
stratus_test_<random>, and dropped at the end; nothing else on the server is touched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import stratus_sql
from stratus_sql import Database
from stratus_sql.queries import users
from stratus_sql.records import User

LOCAL_SERVER = "postgresql://root@127.0.0.1:5432/postgres"
BACKENDS = ("postgres", "sqlite")


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
def database_urls(
    new_pg_database: Callable[[], str], new_sqlite_database: Callable[[], str]
) -> dict[str, str]:
    """One migrated database per backend, shared by the contract tests of this run."""
    urls = {"postgres": new_pg_database(), "sqlite": new_sqlite_database()}
    for url in urls.values():
        stratus_sql.apply_migrations(url)
    return urls


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database_url(backend: str, database_urls: dict[str, str]) -> str:
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
    return new_pg_database() if backend == "postgres" else new_sqlite_database()


@pytest.fixture
async def user(db: Database) -> User:
    """A new pilot on the `db` under test."""
    return await users.create_user(
        db, name="João Silva", email=f"joao.{secrets.token_hex(6)}@example.com", role="pilot"
    )
