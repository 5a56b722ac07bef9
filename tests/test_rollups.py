"""Hourly metric rollups on every backend: the default series against `exact=True`, writes
that fail, retention, rebuilding, erasure, partitions and row-level security."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

import stratus_sql
from stratus_sql import Database, InvalidInput, NotFound, SamplesPruned, UsageError
from stratus_sql.cli import main
from stratus_sql.engine import Actor
from stratus_sql.queries import dashboards, metrics, users
from stratus_sql.records import User
from tests.checks import assert_close

Sample = dict[str, Any]
SCOPES = ("user", "dashboard", "both", "organisation")


@pytest.fixture
async def fresh(blank_url: str) -> AsyncIterator[tuple[Database, str]]:
    """A Database on a new migrated database of its own (pruning deletes every old sample)."""
    stratus_sql.apply_migrations(blank_url)
    async with await stratus_sql.connect(blank_url) as db:
        yield db, blank_url


async def person(db: Database, role: str = "pilot") -> User:
    return await users.create_user(
        db, name="Ana", email=f"a.{uuid.uuid4().hex[:10]}@x.com", role=role
    )


def draw(rng: random.Random, owner: User, board: uuid.UUID | None, when: datetime) -> Sample:
    return {
        "user_id": owner.user_id,
        "dashboard_id": board,
        "ia_efficiency": rng.random(),
        "model_accuracy": rng.random(),
        "processing_time_ms": rng.choice([0.0, rng.uniform(0.5, 3000), rng.uniform(40, 60)]),
        "memory_usage_mb": rng.uniform(0, 4096),
        "error_rate": rng.random(),
        "timestamp": when,
    }


def edge_times(now: datetime, days: int) -> list[datetime]:
    """A microsecond either side of every hour and every bucket edge of the three periods."""
    out = []
    hour = now.replace(minute=0, second=0, microsecond=0)
    for h in range(days * 24):
        out += [hour - timedelta(hours=h) + timedelta(microseconds=d) for d in (-1, 0, 1)]
    for count, width in metrics.PERIODS.values():
        for i in range(count + 1):
            edge = now - timedelta(seconds=(count - i) * width)
            out += [edge + timedelta(microseconds=d) for d in (-1, 0, 1)]
    return out


async def compare_every_series(
    db: Any, now: datetime, who: User, board: uuid.UUID, checked: int = 0
) -> int:
    """Compare the default series with exact=True for every period and scope; returns how
    many non-empty buckets were compared."""
    args: dict[str, dict[str, Any]] = {
        "user": {"user_id": who.user_id},
        "dashboard": {"dashboard_id": board},
        "both": {"user_id": who.user_id, "dashboard_id": board},
        "organisation": {},
    }
    for period in metrics.PERIODS:
        for scope in SCOPES:
            rolled = await metrics.dashboard_series(db, period=period, now=now, **args[scope])
            exact = await metrics.dashboard_series(
                db, period=period, now=now, exact=True, **args[scope]
            )
            assert_close(rolled, exact)
            checked += sum(1 for b in exact if b.samples)
    return checked


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_default_series_equals_the_exact_one_over_random_samples(
    db: Database, seed: int
) -> None:
    rng = random.Random(seed)
    # Far from the windows the other tests of this database write into.
    now = datetime(9000, 1, 1, tzinfo=UTC) + timedelta(
        days=rng.randrange(300_000), seconds=rng.randrange(86400), microseconds=rng.randrange(10**6)
    )
    if seed == 2:  # a `now` on the hour: every bucket edge is an hour edge
        now = now.replace(minute=0, second=0, microsecond=0)
    a, b = await person(db), await person(db)
    boards = [
        (await dashboards.create_dashboard(db, user_id=a.user_id, name=n)).dashboard_id
        for n in ("Um", "Dois")
    ]
    b_board = (await dashboards.create_dashboard(db, user_id=b.user_id, name="Tres")).dashboard_id

    def anyone(when: datetime) -> Sample:
        owner = rng.choice([a, b])
        choices = [None, *boards] if owner is a else [None, b_board]
        return draw(rng, owner, rng.choice(choices), when)

    # A day and a half left empty (holes), samples on every edge, the rest at random.
    hole = (now - timedelta(days=9, hours=12), now - timedelta(days=8))
    spread = [now - timedelta(seconds=rng.uniform(-3600, 33 * 86400)) for _ in range(1500)]
    times = [t for t in edge_times(now, 31) + spread if not hole[0] <= t < hole[1]]
    first = [anyone(t) for t in times[::2]]
    assert await metrics.record_metrics(db, first) == len(first)
    checked = await compare_every_series(db, now, a, boards[0])

    # Later writes into hours already rolled up: backdated batches and single samples.
    later = [anyone(t) for t in times[1::2]]
    await metrics.record_metrics(db, later[: len(later) // 2])
    for s in later[len(later) // 2 :][:40]:
        await metrics.record_metric(db, **s)
    await metrics.record_metrics(db, later[len(later) // 2 :][40:])
    checked = await compare_every_series(db, now, a, boards[0], checked)
    assert checked > 500

    # A deleted dashboard's samples still count for its user, not for the dashboard.
    await dashboards.delete_dashboard(db, boards[0])
    await compare_every_series(db, now, a, boards[0])


async def test_a_failed_write_adds_nothing_to_the_rollups(db: Database, user: User) -> None:
    now = datetime(1989, 6, 1, 12, 30, tzinfo=UTC)
    rng = random.Random(3)
    good = [draw(rng, user, None, now - timedelta(minutes=7 * i)) for i in range(50)]
    await metrics.record_metrics(db, good)
    before = await metrics.dashboard_series(db, user_id=user.user_id, now=now)
    missing = {**good[0], "user_id": uuid.uuid4()}
    with pytest.raises(NotFound):
        await metrics.record_metrics(db, [*good, missing])
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await metrics.record_metric(tx, **good[1])
            raise RuntimeError("rolled back")
    assert await metrics.dashboard_series(db, user_id=user.user_id, now=now) == before
    assert_close(
        before, await metrics.dashboard_series(db, user_id=user.user_id, now=now, exact=True)
    )


def first_of_month(day: date, months_back: int) -> date:
    month = day.year * 12 + day.month - 1 - months_back
    return date(month // 12, month % 12 + 1, 1)


async def test_a_pruned_month_answers_from_the_rollups_and_exact_refuses(
    fresh: tuple[Database, str],
) -> None:
    db, _ = fresh
    rng = random.Random(4)
    owner = await person(db)
    today = datetime.now(UTC)
    cutoff = first_of_month(today.date(), 1)
    horizon = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
    samples = [
        draw(rng, owner, None, today - timedelta(seconds=rng.uniform(60, 75 * 86400)))
        for _ in range(3000)
    ]
    await metrics.record_metrics(db, samples)
    # A window of 30 days across the horizon, its `now` not on the hour.
    now = horizon + timedelta(days=10, minutes=17, microseconds=3)
    before = await metrics.dashboard_series(db, period="30d", now=now, exact=True)

    pruned = sum(1 for s in samples if s["timestamp"] < horizon)
    assert await metrics.prune(db, before=cutoff) == pruned
    assert await metrics.prune(db, before=cutoff) == 0

    with pytest.raises(SamplesPruned) as refused:
        await metrics.dashboard_series(db, period="30d", now=now, exact=True)
    assert refused.value.pruned_before == horizon
    # After the horizon the exact series still answers, and equals the default one.
    after = now + timedelta(days=30)
    assert_close(
        await metrics.dashboard_series(db, period="30d", now=after),
        await metrics.dashboard_series(db, period="30d", now=after, exact=True),
    )

    # Over the pruned hours the rollups answer alone: an hour counts where it starts. That
    # holds for hourly buckets too, which off the hour otherwise read every sample.
    def by_hour_start(period: str, until: datetime) -> list[int]:
        count, width = metrics.PERIODS[period]
        start = until - timedelta(seconds=count * width)
        expected = [0] * count
        for s in samples:
            hour = s["timestamp"].replace(minute=0, second=0, microsecond=0)
            at = hour if s["timestamp"] < horizon else s["timestamp"]
            if start <= at < until:
                expected[int((at - start).total_seconds() // width)] += 1
        return expected

    rolled = await metrics.dashboard_series(db, period="30d", now=now)
    assert [b.samples for b in rolled] == by_hour_start("30d", now)
    inside = horizon - timedelta(days=5, minutes=43)
    hourly = await metrics.dashboard_series(db, period="24h", now=inside)
    assert [b.samples for b in hourly] == by_hour_start("24h", inside)
    assert sum(b.samples for b in hourly) > 0
    # The buckets wholly after the horizon are those of the samples, as before the prune.
    for got, was in zip(rolled, before, strict=True):
        if got.bucket_start >= horizon:
            assert got.samples == was.samples
            assert got.error_rate_max == was.error_rate_max


async def test_prune_maintain_and_rebuild_refuse_bad_arguments_and_write_nothing(
    fresh: tuple[Database, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, url = fresh
    owner = await person(db)
    old = datetime(2001, 5, 6, 7, 8, tzinfo=UTC)
    await metrics.record_metrics(db, [draw(random.Random(11), owner, None, old)])
    now = old + timedelta(days=1)
    before = await metrics.dashboard_series(db, period="30d", now=now)
    before_exact = await metrics.dashboard_series(db, period="30d", now=now, exact=True)
    next_month = first_of_month(datetime.now(UTC).date(), -1)
    with pytest.raises(InvalidInput, match="current"):
        await metrics.prune(db, before=next_month)
    for bad in (date(2020, 1, 2), datetime(2020, 1, 1, tzinfo=UTC), "2020-01"):
        with pytest.raises(InvalidInput, match="first day"):
            await metrics.prune(db, before=bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        async with db.transaction() as tx:
            await metrics.prune(tx, before=date(2020, 1, 1))
    assert await asyncio.to_thread(main, ["--url", url, "metrics", "prune", "--before", "May"]) == 1
    assert "expected YYYY-MM" in capsys.readouterr().err
    for since in (datetime(2020, 1, 1), "2020-01-01", datetime(1, 1, 1, tzinfo=UTC)):
        with pytest.raises(InvalidInput, match="since"):
            await metrics.rebuild_rollups(db, since=since)  # type: ignore[arg-type]
    for months in (-1, 121, "3", True):
        with pytest.raises(InvalidInput, match="months_ahead"):
            await metrics.maintain(db, months_ahead=months)  # type: ignore[arg-type]
    # Nothing was pruned or rebuilt: the old sample is still there, in its rollups too.
    assert await metrics.dashboard_series(db, period="30d", now=now, exact=True) == before_exact
    assert await metrics.dashboard_series(db, period="30d", now=now) == before
    assert sum(bucket.samples for bucket in before) == 1


async def test_maintain_makes_the_months_ahead_on_postgres_and_nothing_on_sqlite(
    fresh: tuple[Database, str],
) -> None:
    db, url = fresh
    made = await metrics.maintain(db, months_ahead=6)
    if url.startswith("postgresql"):
        assert made == 3  # the migration made this month and the next three
        assert await metrics.maintain(db, months_ahead=6) == 0
        with psycopg.connect(url) as conn:
            parts = conn.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'metrics'::regclass"
            ).fetchone()
        assert parts == (8,)  # seven months and metrics_default
    else:
        assert made == 0


def raw(url: str, sql: str) -> None:
    """Run SQL behind the layer's back."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql)


async def test_rebuild_rollups_repairs_rollups_edited_or_bypassed(
    fresh: tuple[Database, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, url = fresh
    rng = random.Random(5)
    owner = await person(db)
    now = datetime(2001, 3, 4, 5, 6, 7, 8, tzinfo=UTC)
    await metrics.record_metrics(
        db, [draw(rng, owner, None, now - timedelta(minutes=13 * i)) for i in range(400)]
    )
    raw(url, "UPDATE metrics_hourly SET samples = samples + 5, error_rate_max = 2")

    def series() -> Any:
        return metrics.dashboard_series(db, period="7d", now=now)

    assert (await series()) != (
        await metrics.dashboard_series(db, period="7d", now=now, exact=True)
    )
    assert await asyncio.to_thread(main, ["--url", url, "metrics", "rebuild-rollups"]) == 0
    assert "rebuilt" in capsys.readouterr().out
    assert_close(
        await series(), await metrics.dashboard_series(db, period="7d", now=now, exact=True)
    )

    # Samples imported around the layer (the rollups not told) are counted after a rebuild
    # of the hours since the import.
    raw(url, "DELETE FROM metrics_hourly WHERE hour >= '2001-03-02'")
    assert (
        await asyncio.to_thread(
            main, ["--url", url, "metrics", "rebuild-rollups", "--since", "2001-03-02"]
        )
        == 0
    )
    assert_close(
        await series(), await metrics.dashboard_series(db, period="7d", now=now, exact=True)
    )
    assert (
        await asyncio.to_thread(
            main, ["--url", url, "metrics", "rebuild-rollups", "--since", "March"]
        )
        == 1
    )
    assert "expected YYYY-MM-DD" in capsys.readouterr().err


async def test_erasing_a_person_removes_their_rollups_from_every_level(db: Database) -> None:
    rng = random.Random(6)
    now = datetime(1977, 7, 7, 7, 7, 7, 7, tzinfo=UTC)
    a, b = await person(db), await person(db)
    board = (await dashboards.create_dashboard(db, user_id=a.user_id, name="D")).dashboard_id
    await metrics.record_metrics(
        db,
        [draw(rng, rng.choice([a, b]), None, now - timedelta(minutes=11 * i)) for i in range(2000)]
        + [draw(rng, a, board, now - timedelta(minutes=17 * i)) for i in range(300)],
    )
    assert await users.erase_user(db, a.user_id) is True
    scopes: list[dict[str, Any]] = [{"user_id": a.user_id}, {"dashboard_id": board}]
    for scope in scopes:
        for period in metrics.PERIODS:
            series = await metrics.dashboard_series(db, period=period, now=now, **scope)
            assert all(bucket.samples == 0 for bucket in series)
    # The organisation's series counts only the samples left: b's.
    await compare_every_series(db, now, b, board)


async def test_a_scoped_actor_reads_only_its_own_rollups(pg_url: str) -> None:
    rng = random.Random(7)
    now = datetime(1966, 6, 6, 6, 6, tzinfo=UTC)
    async with await stratus_sql.connect(pg_url) as db:
        a, b, admin = await person(db), await person(db), await person(db, "admin")
        for who in (a, b):
            await metrics.record_metrics(
                db, [draw(rng, who, None, now - timedelta(minutes=9 * i + 1)) for i in range(500)]
            )
        theirs = await metrics.dashboard_series(db, period="7d", now=now, user_id=b.user_id)
        async with db.transaction(actor=Actor(user_id=a.user_id), scoped=True) as tx:
            mine = await metrics.dashboard_series(tx, period="7d", now=now, user_id=a.user_id)
            exact = await metrics.dashboard_series(
                tx, period="7d", now=now, user_id=a.user_id, exact=True
            )
            assert_close(mine, exact)
            assert sum(bucket.samples for bucket in mine) == 500
            others = await metrics.dashboard_series(tx, period="7d", now=now, user_id=b.user_id)
            assert all(bucket.samples == 0 for bucket in others)
            # The organisation's rollups are an admin's: a pilot's org-wide series is the
            # pilot's own, as exact=True reads it under row-level security.
            org = await metrics.dashboard_series(tx, period="7d", now=now)
            assert_close(org, await metrics.dashboard_series(tx, period="7d", now=now, exact=True))
            assert sum(bucket.samples for bucket in org) == 500
        async with db.transaction(actor=Actor(user_id=admin.user_id), scoped=True) as tx:
            seen = await metrics.dashboard_series(tx, period="7d", now=now, user_id=b.user_id)
            assert seen == theirs
            # A scoped writer still adds to the organisation's rollups it cannot read.
            await metrics.record_metric(tx, **draw(rng, admin, None, now - timedelta(hours=1)))
        org = await metrics.dashboard_series(db, period="7d", now=now)
        assert sum(bucket.samples for bucket in org) == 1001


async def test_months_get_partitions_and_prune_drops_them(new_pg_database: Any) -> None:
    url = new_pg_database()
    assert await asyncio.to_thread(main, ["--url", url, "migrate"]) == 0
    old = datetime.now(UTC) - timedelta(days=150)
    async with await stratus_sql.connect(url) as db:
        owner = await person(db)
        await metrics.record_metric(db, **draw(random.Random(8), owner, None, old))
    part = f"metrics_y{old:%Y}m{old:%m}"

    def where() -> str:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT tableoid::regclass::text FROM metrics").fetchone()
            assert row is not None
            return str(row[0])

    assert where() == "metrics_default"
    assert await asyncio.to_thread(main, ["--url", url, "maintain"]) == 0
    assert where() == part
    month = first_of_month(old.date(), -1)
    assert (
        await asyncio.to_thread(
            main, ["--url", url, "metrics", "prune", "--before", f"{month:%Y-%m}"]
        )
        == 0
    )
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (part,)).fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (0,)
    assert await asyncio.to_thread(main, ["--url", url, "metrics", "prune", "--before", "May"]) == 1


async def test_a_window_across_a_daylight_saving_change_is_that_many_hours(db: Database) -> None:
    """A `now` in a zone that changes its clocks: the window is 7 x 24 hours of elapsed time,
    and the default series counts what the exact one does."""
    owner = await person(db)
    paris = ZoneInfo("Europe/Paris")
    now = datetime(2024, 3, 31, 12, 30, tzinfo=paris)  # the clocks went forward at 02:00
    utc = now.astimezone(UTC)
    times = [utc - timedelta(minutes=m) for m in range(1, 11)]
    times += [utc + timedelta(minutes=m) for m in range(0, 10)]  # after `now`: outside
    times += [utc - timedelta(days=7) + timedelta(minutes=m) for m in (-2, 2)]
    rng = random.Random(9)
    await metrics.record_metrics(db, [draw(rng, owner, None, t) for t in times])
    rolled = await metrics.dashboard_series(db, period="7d", now=now, user_id=owner.user_id)
    exact = await metrics.dashboard_series(
        db, period="7d", now=now, user_id=owner.user_id, exact=True
    )
    assert_close(rolled, exact)
    assert sum(bucket.samples for bucket in rolled) == 11
    assert rolled[0].bucket_start == utc - timedelta(days=7)


async def test_the_largest_processing_times_keep_their_p95(db: Database) -> None:
    owner = await person(db)
    now = datetime(1955, 5, 5, 5, 5, tzinfo=UTC)
    # Near the largest double (their sum must still be finite, as means need it).
    huge = [9e307, 5e307, 1e307, 2e306, 1e300]
    rng = random.Random(10)
    await metrics.record_metrics(
        db,
        [
            {**draw(rng, owner, None, now - timedelta(hours=3, minutes=i)), "processing_time_ms": v}
            for i, v in enumerate(huge)
        ],
    )
    # PostgreSQL's avg() of such values overflows (it keeps a sum of squares), so the
    # reference is computed here.
    ordered = sorted(huge)
    h = 0.95 * (len(ordered) - 1)
    low = int(h)
    expected = ordered[low] + (h - low) * (ordered[low + 1] - ordered[low])
    for period in ("7d", "30d"):
        rolled = await metrics.dashboard_series(db, period=period, now=now, user_id=owner.user_id)
        p95 = [b.processing_time_p95_ms for b in rolled if b.samples]
        assert p95 == [pytest.approx(expected, rel=0.01)]
