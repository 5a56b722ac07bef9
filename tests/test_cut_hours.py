"""The hours a bucket edge cuts, on every backend: each case below takes a path of its own
through the default series (on PostgreSQL: the side of the edge read, the other side derived
from the hour's rollup or read too), and must match `exact=True`."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stratus_sql import Database
from stratus_sql.queries import metrics, users
from tests.checks import adhoc, assert_close

# 20 minutes past the hour: every 30-day bucket edge cuts its hour into 20 minutes before
# the edge (the side read, the shorter) and 40 after (derived from the hour's rollup).
NOW = datetime(1962, 4, 4, 10, 20, tzinfo=UTC)
DAY = timedelta(days=1)


def sample(owner: uuid.UUID, at: datetime, rng: random.Random, **values: float) -> dict[str, Any]:
    return {
        "user_id": owner,
        "ia_efficiency": rng.random(),
        "model_accuracy": rng.random(),
        "processing_time_ms": rng.uniform(10, 100),
        "memory_usage_mb": rng.uniform(100, 200),
        "error_rate": rng.uniform(0, 0.5),
        "timestamp": at,
        **values,
    }


def spread(start: datetime, minutes: float, n: int) -> list[datetime]:
    """n times spread over `minutes` from `start`."""
    return [start + timedelta(minutes=minutes * (i + 0.5) / n) for i in range(n)]


async def pilot(db: Database, name: str) -> uuid.UUID:
    email = f"{name.lower()}.{uuid.uuid4().hex[:10]}@example.com"
    return (await users.create_user(db, name=name, email=email, role="pilot")).user_id


async def series_of(db: Database, owner: uuid.UUID) -> list[Any]:
    rolled = await metrics.dashboard_series(db, period="30d", now=NOW, user_id=owner)
    exact = await metrics.dashboard_series(db, period="30d", now=NOW, user_id=owner, exact=True)
    assert_close(rolled, exact)
    return rolled


async def test_every_side_of_a_cut_hour_adds_up(db: Database) -> None:
    owner = await pilot(db, "Corte")
    rng = random.Random(5)
    edge = NOW - 2 * DAY  # each case in the hour of its own edge
    hour = edge.replace(minute=0)
    later = edge + timedelta(hours=3)  # whole hours of the bucket after the edge
    samples = [
        # The worst error rate of the hour is before the edge, above every whole hour of the
        # bucket after it: the side after the edge is read too.
        *(sample(owner, t, rng) for t in spread(hour, 20, 5)),
        sample(owner, hour + timedelta(minutes=10), rng, error_rate=0.99),
        *(sample(owner, t, rng) for t in spread(edge, 40, 9)),
        *(sample(owner, t, rng, error_rate=0.6) for t in spread(later, 60, 4)),
        # A day earlier the worst before the edge (0.55) is below a whole hour of the bucket
        # after it (0.6): the side after is the hour less the side before.
        *(sample(owner, t - DAY, rng) for t in spread(hour, 20, 5)),
        sample(owner, hour - DAY + timedelta(minutes=5), rng, error_rate=0.55),
        *(sample(owner, t - DAY, rng) for t in spread(edge, 40, 9)),
        *(sample(owner, t - DAY, rng, error_rate=0.6) for t in spread(later, 60, 4)),
        # Five days before: samples before the edge only; the side after is read, empty.
        *(sample(owner, t - 5 * DAY, rng) for t in spread(hour, 20, 7)),
        # Seven days before: an outlier before the edge holds nearly all of a sum, so the
        # side after cannot be a difference (it would lose most of its few milliseconds).
        sample(owner, hour - 7 * DAY + timedelta(minutes=3), rng, processing_time_ms=1e13,
               error_rate=0.0),
        *(sample(owner, t - 7 * DAY, rng, processing_time_ms=5.3, error_rate=0.3)
          for t in spread(edge, 40, 3)),
        # Nine days before: the hour's top 32 sketch bins are all before the edge, and the
        # p95 of the side after lies below them: the series is read again, sketches whole.
        *(
            sample(owner, t - 9 * DAY, rng, processing_time_ms=200 * 1.06**i)
            for i, t in enumerate(spread(hour, 20, 40))
        ),
        *(sample(owner, t - 9 * DAY, rng, error_rate=0.9) for t in spread(edge, 40, 600)),
        # Today, six samples dated after `now` in its hour: the window has the hour less them.
        *(sample(owner, t, rng) for t in spread(NOW.replace(minute=0), 20, 6)),
        *(sample(owner, t, rng, error_rate=0.0) for t in spread(NOW, 40, 6)),
    ]  # fmt: skip
    await metrics.record_metrics(db, samples)
    rolled = await series_of(db, owner)

    by_start = {b.bucket_start: b for b in rolled}
    assert by_start[edge - DAY].error_rate_max == 0.99  # the side before, read
    assert by_start[edge].error_rate_max == 0.6
    assert by_start[edge - 5 * DAY].samples == 0
    assert by_start[edge - 5 * DAY].ia_efficiency is None
    assert by_start[edge - 7 * DAY].processing_time_ms == pytest.approx(5.3, rel=1e-12)
    assert by_start[edge - 9 * DAY].samples == 600
    assert by_start[NOW - DAY].samples == 6  # the 6 dated after `now` are not in the window
    assert sum(b.samples for b in rolled) == len(samples) - 6


# Rollups that fall short of the samples: written around the layer, say, before a rebuild.
SHORT_ROLLUPS = adhoc(
    "short_rollups :execrows",
    postgres="UPDATE metrics_hourly SET samples = 1 WHERE user_id = :user_id",
    sqlite="UPDATE metrics_hourly SET samples = 1 WHERE user_id = :user_id",
)


async def test_a_cut_hour_whose_rollup_falls_short_is_read_whole(db: Database) -> None:
    owner = await pilot(db, "Curta")
    rng = random.Random(8)
    edge = NOW - 3 * DAY
    hour = edge.replace(minute=0)
    # Only this cut hour has samples; the side read (before the edge) holds fewer than the
    # side after, and not the worst error rate.
    await metrics.record_metrics(
        db,
        [
            *(sample(owner, t, rng) for t in spread(hour, 20, 5)),
            *(sample(owner, t, rng, error_rate=0.9) for t in spread(edge, 40, 9)),
        ],
    )
    assert await db.execute_rows(SHORT_ROLLUPS, user_id=owner) == 1

    # The side after the edge is read too rather than taken as 1 - 5 samples.
    rolled = await series_of(db, owner)
    assert [b.samples for b in rolled if b.samples] == [5, 9]
