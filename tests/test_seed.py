"""Seeding (stratus-sql seed) and the demo's table, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

import pytest

from stratus_sql import Database, InvalidInput
from stratus_sql.cli import main
from stratus_sql.cli.demo import dashboard_table, sparkline
from stratus_sql.cli.seed import ADMIN_EMAIL, DASHBOARD_NAME, RANGES, seed
from stratus_sql.queries import dashboards, metrics, users

# Each test seeds the one admin dashboard of its leg's database, so each gets its own "now",
# years from the others': no test counts samples another one stored.
NOW = {
    "once": datetime(1981, 1, 1, tzinfo=UTC),
    "spread": datetime(1983, 1, 1, tzinfo=UTC),
    "table": datetime(1985, 1, 1, tzinfo=UTC),
}


async def test_seed_creates_the_admin_dashboard_and_hourly_samples_once(db: Database) -> None:
    now = NOW["once"]
    first = await seed(db, now=now)
    assert (first.admin.email, first.admin.role.value, first.dashboard.name) == (
        ADMIN_EMAIL,
        "admin",
        DASHBOARD_NAME,
    )
    assert first.samples == 720
    month = await metrics.dashboard_series(
        db, period="30d", dashboard_id=first.dashboard.dashboard_id, now=now
    )
    assert [b.samples for b in month] == [24] * 30
    day = await metrics.dashboard_series(
        db, period="24h", dashboard_id=first.dashboard.dashboard_id, now=now
    )
    assert [b.samples for b in day] == [1] * 24
    for field, (low, high) in RANGES.items():
        assert all(low <= getattr(b, field) <= high for b in day), field

    again = await seed(db, samples=10, now=now)
    assert (again.admin, again.dashboard) == (first.admin, first.dashboard)
    assert await dashboards.list_dashboards(db, first.admin.user_id) == [first.dashboard]
    assert await users.get_user_by_email(db, ADMIN_EMAIL) == first.admin


async def test_seed_spreads_samples_over_users(db: Database) -> None:
    now = NOW["spread"]
    report = await seed(db, samples=90, users_count=3, now=now)
    assert (report.users, report.samples) == (3, 90)
    for i in (1, 2):
        pilot = await users.get_user_by_email(db, f"piloto{i:04d}@example.com")
        assert pilot is not None
        series = await metrics.dashboard_series(db, period="30d", user_id=pilot.user_id, now=now)
        assert sum(b.samples for b in series) == 30


class Counts(TypedDict, total=False):
    samples: int
    users_count: int


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"samples": -1}, "samples"), ({"users_count": 0}, "users")]
)
async def test_seed_rejects_bad_counts(db: Database, kwargs: Counts, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        await seed(db, **kwargs)


def test_seed_command_needs_migrations_then_seeds(
    blank_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", blank_url, "seed"]) == 1
    assert "run stratus-sql migrate" in capsys.readouterr().err
    assert main(["--url", blank_url, "migrate"]) == 0
    assert main(["--url", blank_url, "seed", "--samples", "20000", "--users", "2"]) == 0
    captured = capsys.readouterr()
    assert "seeded 20,000 samples over 2 user(s)" in captured.out
    assert "20,000/20,000 samples" in captured.err  # the progress bar
    assert main(["--url", blank_url, "seed", "--samples", "-3"]) == 1
    assert "samples" in capsys.readouterr().err


def test_sparkline_scales_between_min_and_max() -> None:
    assert sparkline([0.0, 0.5, 1.0, None]) == "▁▅█ "
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert sparkline([None, None]) == "  "


async def test_dashboard_table_lists_every_statistic(db: Database) -> None:
    now = NOW["table"]
    report = await seed(db, samples=720, now=now)
    series = await metrics.dashboard_series(
        db, period="24h", dashboard_id=report.dashboard.dashboard_id, now=now
    )
    table = dashboard_table(series)
    for label in (
        "eficiência da IA",
        "precisão do modelo",
        "processamento p95 (ms)",
        "pior taxa de erro",
    ):
        assert label in table
    assert all(len(line.split("   ")[-1].strip()) == 24 for line in table.splitlines()[1:])
