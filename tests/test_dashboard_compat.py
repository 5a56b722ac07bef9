"""`stratus_sql.dashboard.generate_data`: the dashboard plan's dict, from persisted metrics."""

from __future__ import annotations

import pytest

from stratus_sql import Database, InvalidInput, UsageError
from stratus_sql.dashboard import FIELDS, generate_data
from stratus_sql.queries import metrics
from tests.webapp import person


@pytest.mark.parametrize("periodo", ["24h", "7d", "30d"])
async def test_the_plans_dict_comes_from_the_buckets(db: Database, periodo: str) -> None:
    owner = await person(db, samples=200)
    data = await generate_data(periodo, db=db, dashboard_id=owner.board.dashboard_id)
    buckets = await metrics.dashboard_series(
        db, period=periodo, dashboard_id=owner.board.dashboard_id
    )
    assert data["periodo"] == periodo
    assert data["stale"] is False
    assert data["age_seconds"] == 0
    assert len(data["timestamps"]) == len(buckets)
    assert data["samples"] == [b.samples for b in buckets]
    assert sum(data["samples"]) > 0
    for key, field in (
        ("ia_efficiency", "ia_efficiency"),
        ("model_accuracy", "model_accuracy"),
        ("processing_time", "processing_time_ms"),
        ("processing_time_p95", "processing_time_p95_ms"),
        ("memory_usage", "memory_usage_mb"),
        ("error_rate", "error_rate"),
        ("error_rate_max", "error_rate_max"),
    ):
        assert data[key] == pytest.approx([getattr(b, field) for b in buckets]), key
    # An empty bucket is None, not a made-up number (samples are 90 minutes apart and
    # reach back 12.5 days: some hours and days have none).
    empty = [i for i, b in enumerate(buckets) if b.samples == 0]
    assert empty or periodo == "7d"
    assert all(data[key][i] is None for key in FIELDS for i in empty)


async def test_one_users_data(db: Database) -> None:
    owner = await person(db, samples=12)
    data = await generate_data("24h", db=db, user_id=owner.user.user_id)
    assert sum(data["samples"]) == 12


async def test_refusals(db: Database) -> None:
    with pytest.raises(InvalidInput, match="period"):
        await generate_data("all", db=db)
    with pytest.raises(UsageError, match="Database"):
        await generate_data("24h", db="sqlite:///x.db")  # type: ignore[arg-type]
