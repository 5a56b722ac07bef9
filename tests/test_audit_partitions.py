"""audit_log's monthly partitions on PostgreSQL: created ahead, dropped whole by prune."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

import stratus_sql
from stratus_sql import Database, InvalidInput, UsageError
from stratus_sql.cli import main
from stratus_sql.queries import audit, users


@pytest.fixture
async def pg(new_pg_database: Callable[[], str]) -> AsyncIterator[tuple[Database, str]]:
    url = new_pg_database()
    stratus_sql.apply_migrations(url)
    async with await stratus_sql.connect(url) as db:
        yield db, url


def partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1"
            )
        ]


def month_name(day: date) -> str:
    return f"audit_log_y{day:%Y}m{day:%m}"


async def test_the_coming_months_have_partitions_and_rows_land_in_theirs(
    pg: tuple[Database, str],
) -> None:
    db, url = pg
    this_month = datetime.now(UTC).date().replace(day=1)
    months = [this_month]
    for _ in range(3):
        months.append((months[-1] + timedelta(days=32)).replace(day=1))
    expected = [month_name(m) for m in months]
    assert partitions(url) == expected
    assert await audit.maintain(db) == 0  # already there
    assert await audit.maintain(db, months_ahead=5) == 2
    user = await users.create_user(
        db, name="Ana", email=f"p.{uuid.uuid4().hex}@x.com", role="admin"
    )
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT tableoid::regclass::text FROM audit_log WHERE record_id = %s", (user.user_id,)
        ).fetchone()
    assert row is not None
    (where,) = row
    assert where == month_name(this_month)
    with pytest.raises(InvalidInput):
        await audit.maintain(db, months_ahead=-1)


async def test_prune_drops_old_months_and_the_kept_chain_still_verifies(
    pg: tuple[Database, str],
) -> None:
    db, url = pg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT audit_log_add_partitions(3, '2020-01-15')")
        for day in (3, 20):
            conn.execute(
                'INSERT INTO audit_log (action, table_name, "timestamp")'
                " VALUES ('INSERT', 'users', %s)",
                (datetime(2020, 1, day, tzinfo=UTC),),
            )
    await users.create_user(db, name="Ana", email=f"p.{uuid.uuid4().hex}@x.com", role="pilot")
    await audit.seal(db)
    assert "audit_log_y2020m01" in partitions(url)

    dropped = await audit.prune(db, before=date(2020, 6, 1))
    assert dropped == 5  # January to May 2020
    assert "audit_log_y2020m01" not in partitions(url)
    kept_2020 = [p for p in partitions(url) if p.startswith("audit_log_y2020")]
    assert all(p >= "audit_log_y2020m06" for p in kept_2020)
    (event,) = await audit.list_audit(db, table_name="audit_log")
    assert event.action == "PRUNE"
    assert event.new_values is not None
    assert event.new_values["partitions"] == 5
    await audit.seal(db)
    assert (await audit.verify(db)).ok
    for bad in (date(2020, 6, 2), datetime(2020, 6, 1, tzinfo=UTC)):
        with pytest.raises(InvalidInput):
            await audit.prune(db, before=bad)


async def test_verify_rejects_a_chain_that_starts_from_nowhere(pg: tuple[Database, str]) -> None:
    db, url = pg
    await users.create_user(db, name="Ana", email=f"p.{uuid.uuid4().hex}@x.com", role="pilot")
    await audit.seal(db)
    await users.create_user(db, name="Bia", email=f"p.{uuid.uuid4().hex}@x.com", role="pilot")
    await audit.seal(db)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "DELETE FROM audit_seals WHERE seal_id = (SELECT min(seal_id) FROM audit_seals)"
        )
    report = await audit.verify(db)
    assert not report.ok
    assert report.problem == "the chain's first seal follows no recorded prune"


async def test_sqlite_has_no_partitions_to_prune(sqlite_url: str) -> None:
    async with await stratus_sql.connect(sqlite_url) as db:
        assert await audit.maintain(db) == 0
        with pytest.raises(UsageError, match="PostgreSQL"):
            await audit.prune(db, before=date(2020, 1, 1))


def test_maintain_and_prune_commands(
    new_pg_database: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_pg_database()
    assert main(["--url", url, "migrate"]) == 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT audit_log_add_partitions(0, '2021-03-01')")
    assert main(["--url", url, "maintain"]) == 0
    assert "created 0 audit and 0 metrics partition(s)" in capsys.readouterr().out
    assert main(["--url", url, "audit", "prune", "--before", "2021-05"]) == 0
    assert "dropped 2 monthly partition(s) before 2021-05" in capsys.readouterr().out
    assert main(["--url", url, "audit", "prune", "--before", "May"]) == 1
    assert "expected YYYY-MM" in capsys.readouterr().err


async def test_prune_refuses_the_current_month_and_later(pg: tuple[Database, str]) -> None:
    db, _ = pg
    next_month = (datetime.now(UTC).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    with pytest.raises(InvalidInput, match="current"):
        await audit.prune(db, before=next_month)
    with pytest.raises(InvalidInput):
        await audit.maintain(db, months_ahead=2**31)
