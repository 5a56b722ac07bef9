"""queries.metrics on both backends: ingest, and series checked against a reference."""

from __future__ import annotations

import math
import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from stratus_sql import Database, InvalidInput, NotFound, UsageError
from stratus_sql.queries import dashboards, metrics, users
from stratus_sql.records import Metric, MetricBucket, MetricSample, User

FIELDS = ("ia_efficiency", "model_accuracy", "processing_time_ms", "memory_usage_mb", "error_rate")


# A sample as record_metrics takes it: a mapping of its fields to their values.
Sample = dict[str, Any]


def sample(user: User, **overrides: object) -> Sample:
    base: Sample = {
        "user_id": user.user_id,
        "ia_efficiency": 0.9,
        "model_accuracy": 0.95,
        "processing_time_ms": 120.0,
        "memory_usage_mb": 512.0,
        "error_rate": 0.01,
    }
    return {**base, **overrides}


def private_now() -> datetime:
    """A `now` in a window of the past no other test writes into."""
    return datetime(1990, 1, 1, tzinfo=UTC) + timedelta(
        days=random.randrange(2_500_000), microseconds=random.randrange(10**6)
    )


# Left empty, so every period has empty buckets: [now - 8h, now - 5h), [now - 4d, now - 3d).
GAPS = ((timedelta(hours=8), timedelta(hours=5)), (timedelta(days=4), timedelta(days=3)))


def random_time(rng: random.Random, now: datetime) -> datetime:
    """From 35 days before `now` to an hour after it (outside every window), but the gaps."""
    while True:
        when = now - timedelta(seconds=rng.uniform(-3600, 35 * 86400))
        if not any(now - old <= when < now - recent for old, recent in GAPS):
            return when


def percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    h = q * (len(ordered) - 1)
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def reference(samples: list[Sample], period: str, now: datetime) -> list[dict[str, object]]:
    count, width = metrics.PERIODS[period]
    since = now - timedelta(seconds=count * width)
    out = []
    for i in range(count):
        start = since + timedelta(seconds=i * width)
        end = start + timedelta(seconds=width)
        inside = [s for s in samples if start <= s["timestamp"] < end]
        bucket: dict[str, object] = {"bucket_start": start, "samples": len(inside)}
        for f in FIELDS:
            bucket[f] = statistics.fmean(s[f] for s in inside) if inside else None
        bucket["processing_time_p95_ms"] = (
            percentile_cont([s["processing_time_ms"] for s in inside], 0.95) if inside else None
        )
        bucket["error_rate_max"] = max(s["error_rate"] for s in inside) if inside else None
        out.append(bucket)
    return out


def assert_matches(
    series: list[MetricBucket], expected: list[dict[str, object]], *, exact: bool = True
) -> None:
    """Every statistic equal to float rounding; with `exact=False` the p95 within the
    sketch's 1% of the reference (percentile_cont over the samples)."""
    assert len(series) == len(expected)
    for got, want in zip(series, expected, strict=True):
        assert got.bucket_start == want["bucket_start"]
        assert got.samples == want["samples"]
        for name, value in want.items():
            if name in ("bucket_start", "samples"):
                continue
            if value is None:
                assert getattr(got, name) is None, name
            elif name == "processing_time_p95_ms" and not exact:
                assert getattr(got, name) == pytest.approx(value, rel=0.01 + 1e-9, abs=1e-9)
            else:
                assert getattr(got, name) == pytest.approx(value, rel=1e-9, abs=1e-9), name


@pytest.mark.parametrize("exact", [False, True], ids=["rollups", "exact"])
@pytest.mark.parametrize("period", ["24h", "7d", "30d"])
async def test_series_matches_a_reference_computed_from_the_samples(
    db: Database, user: User, period: str, exact: bool
) -> None:
    rng = random.Random(period)
    now = private_now()
    other = await users.create_user(
        db, name="Outro", email=f"o.{uuid.uuid4().hex[:8]}@x.com", role="mechanic"
    )
    board = await dashboards.create_dashboard(
        db, user_id=user.user_id, name="AI Monitoring Dashboard"
    )
    samples: list[Sample] = []
    for _ in range(600):
        owner = rng.choice([user, other])
        samples.append(
            {
                "user_id": owner.user_id,
                "dashboard_id": board.dashboard_id
                if owner is user and rng.random() < 0.5
                else None,
                "ia_efficiency": rng.random(),
                "model_accuracy": rng.random(),
                "processing_time_ms": rng.uniform(0, 2000),
                "memory_usage_mb": rng.uniform(0, 4096),
                "error_rate": rng.random() * 0.2,
                "timestamp": random_time(rng, now),
            }
        )
    # Samples exactly on the window's edges: the start is in, `now` is out.
    count, width = metrics.PERIODS[period]
    samples.append({**sample(user), "timestamp": now - timedelta(seconds=count * width)})
    samples.append({**sample(user), "timestamp": now})
    assert await metrics.record_metrics(db, samples) == len(samples)

    mine = [s for s in samples if s["user_id"] == user.user_id]
    on_board = [s for s in samples if s.get("dashboard_id") == board.dashboard_id]
    cases: list[tuple[UUID | None, UUID | None, list[Sample]]] = [
        (user.user_id, None, mine),
        (None, board.dashboard_id, on_board),
        (user.user_id, board.dashboard_id, on_board),
        (None, None, samples),
    ]
    for user_id, dashboard_id, subset in cases:
        series = await metrics.dashboard_series(
            db, period=period, now=now, user_id=user_id, dashboard_id=dashboard_id, exact=exact
        )
        assert_matches(series, reference(subset, period, now), exact=exact)
    assert any(b.samples == 0 for b in series)


async def test_empty_buckets_have_zero_samples_and_no_statistics(db: Database, user: User) -> None:
    now = private_now()
    series = await metrics.dashboard_series(db, period="30d", user_id=user.user_id, now=now)
    assert len(series) == 30
    assert series[0].bucket_start == now - timedelta(days=30)
    assert series[-1].bucket_start == now - timedelta(days=1)
    assert all(
        b.samples == 0
        and b.ia_efficiency is None
        and b.processing_time_p95_ms is None
        and b.error_rate_max is None
        for b in series
    )


async def test_bucket_counts_per_period(db: Database) -> None:
    now = private_now()
    for period, (count, width) in metrics.PERIODS.items():
        series = await metrics.dashboard_series(db, period=period, now=now)
        assert len(series) == count
        assert [b.bucket_start for b in series] == [
            now - timedelta(seconds=(count - i) * width) for i in range(count)
        ]


async def test_record_metrics_accepts_samples_and_mappings_and_defaults_the_time(
    db: Database, user: User
) -> None:
    before = datetime.now(UTC)
    stored = await metrics.record_metrics(
        db,
        [MetricSample(**sample(user), periodo="1h"), sample(user)],
    )
    assert stored == 2
    series = await metrics.dashboard_series(
        db, period="24h", user_id=user.user_id, now=datetime.now(UTC) + timedelta(seconds=1)
    )
    assert series[-1].samples == 2
    assert series[-1].bucket_start <= before
    assert await metrics.record_metrics(db, []) == 0


async def test_record_metric_returns_the_stored_sample(db: Database, user: User) -> None:
    when = datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=UTC)
    metric = await metrics.record_metric(db, **sample(user, timestamp=when, periodo="1h"))
    assert isinstance(metric, Metric)
    assert (metric.user_id, metric.dashboard_id, metric.timestamp, metric.periodo) == (
        user.user_id,
        None,
        when,
        "1h",
    )
    assert (metric.ia_efficiency, metric.processing_time_ms) == (0.9, 120.0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ia_efficiency": 1.01}, "ia_efficiency"),
        ({"model_accuracy": -0.1}, "model_accuracy"),
        ({"error_rate": math.nan}, "error_rate"),
        ({"processing_time_ms": -1.0}, "processing_time_ms"),
        ({"processing_time_ms": math.inf}, "processing_time_ms"),
        ({"memory_usage_mb": "512"}, "memory_usage_mb"),
        ({"timestamp": datetime(2026, 1, 1)}, "timestamp"),
        ({"timestamp": "2026-01-01T00:00:00Z"}, "timestamp"),
        ({"periodo": "x" * 17}, "periodo"),
        ({"periodo": "a\x00"}, "periodo"),
        ({"periodo": " 1h"}, "periodo"),
        ({"periodo": "1h "}, "periodo"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_one_bad_sample_rejects_the_batch_naming_its_index(
    db: Database, user: User, overrides: dict[str, object], field: str
) -> None:
    now = private_now()
    batch = [sample(user, timestamp=now - timedelta(minutes=i)) for i in range(5)]
    batch[3] = {**batch[3], **overrides}
    with pytest.raises(InvalidInput, match=rf"samples\[3\]\.{field}"):
        await metrics.record_metrics(db, batch)
    series = await metrics.dashboard_series(
        db, period="24h", user_id=user.user_id, now=now + timedelta(seconds=1)
    )
    assert sum(b.samples for b in series) == 0


async def test_a_sample_of_a_missing_user_rejects_the_whole_batch(db: Database, user: User) -> None:
    now = private_now()
    batch = [
        sample(user, timestamp=now - timedelta(minutes=1)),
        {**sample(user), "user_id": uuid.uuid4()},
    ]
    with pytest.raises(NotFound):
        await metrics.record_metrics(db, batch)
    series = await metrics.dashboard_series(db, period="24h", user_id=user.user_id, now=now)
    assert sum(b.samples for b in series) == 0


@pytest.mark.parametrize("samples", [{"user_id": 1}, "abc", 42, [1]])
async def test_samples_must_be_an_iterable_of_samples(db: Database, samples: object) -> None:
    with pytest.raises(InvalidInput, match="samples"):
        # wrong types on purpose: the refusal is what is tested
        await metrics.record_metrics(db, samples)  # type: ignore[arg-type]


async def test_series_arguments_are_checked(db: Database) -> None:
    with pytest.raises(InvalidInput, match="24h, 7d, 30d"):
        await metrics.dashboard_series(db, period="1y")
    with pytest.raises(InvalidInput, match="now"):
        await metrics.dashboard_series(db, now=datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="user_id"):
        await metrics.dashboard_series(db, user_id="x")
    with pytest.raises(InvalidInput, match="allow_stale"):
        # wrong types on purpose: the refusal is what is tested
        await metrics.dashboard_series(db, allow_stale="yes")  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="exact"):
        await metrics.dashboard_series(db, exact="yes")  # type: ignore[call-overload]


async def test_allow_stale_wraps_a_good_result_and_refuses_transactions(
    db: Database, user: User
) -> None:
    now = private_now()
    await metrics.record_metrics(db, [sample(user, timestamp=now - timedelta(minutes=5))])
    wrapped = await metrics.dashboard_series(db, user_id=user.user_id, now=now, allow_stale=True)
    assert not wrapped.stale
    assert wrapped.buckets == await metrics.dashboard_series(db, user_id=user.user_id, now=now)
    async with db.transaction() as tx:
        with pytest.raises(UsageError, match="allow_stale"):
            await metrics.dashboard_series(tx, user_id=user.user_id, allow_stale=True)
        with pytest.raises(UsageError, match="allow_stale"):
            await metrics.dashboard_series(db, user_id=user.user_id, allow_stale=True)


async def test_samples_outlive_their_dashboard(db: Database, user: User) -> None:
    now = private_now()
    board = await dashboards.create_dashboard(db, user_id=user.user_id, name="Temporário")
    await metrics.record_metrics(
        db, [sample(user, dashboard_id=board.dashboard_id, timestamp=now - timedelta(minutes=5))]
    )
    await dashboards.delete_dashboard(db, board.dashboard_id)
    assert (await metrics.dashboard_series(db, user_id=user.user_id, now=now))[-1].samples == 1
    assert (await metrics.dashboard_series(db, dashboard_id=board.dashboard_id, now=now))[
        -1
    ].samples == 0


async def test_samples_a_microsecond_from_a_bucket_edge_land_on_their_side(
    db: Database, user: User
) -> None:
    now = private_now()
    count, width = metrics.PERIODS["30d"]
    since = now - timedelta(seconds=count * width)
    edges = [since + timedelta(seconds=k * width) for k in range(1, count)]
    batch = [sample(user, timestamp=edge - timedelta(microseconds=1)) for edge in edges]
    batch += [sample(user, timestamp=edge) for edge in edges]
    await metrics.record_metrics(db, batch)
    series = await metrics.dashboard_series(db, period="30d", user_id=user.user_id, now=now)
    assert [b.samples for b in series] == [1] + [2] * (count - 2) + [1]


async def test_a_sample_cannot_name_another_users_dashboard(db: Database, user: User) -> None:
    other = await users.create_user(
        db, name="Outro", email=f"o.{uuid.uuid4().hex[:8]}@x.com", role="pilot"
    )
    theirs = await dashboards.create_dashboard(db, user_id=other.user_id, name="Deles")
    with pytest.raises(NotFound):
        await metrics.record_metrics(db, [sample(user, dashboard_id=theirs.dashboard_id)])
    with pytest.raises(NotFound):
        await metrics.record_metric(db, **sample(user, dashboard_id=theirs.dashboard_id))
    assert (
        sum(b.samples for b in await metrics.dashboard_series(db, dashboard_id=theirs.dashboard_id))
        == 0
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"period": ["24h"]},
        {"now": datetime(1, 1, 1, tzinfo=UTC)},
        {"now": datetime.max.replace(tzinfo=UTC)},
    ],
)
async def test_series_refuses_periods_and_times_it_cannot_hold(
    db: Database, kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput):
        # wrong types on purpose: the refusal is what is tested
        await metrics.dashboard_series(db, **kwargs)  # type: ignore[call-overload]


async def test_samples_at_the_edges_of_time_are_refused(db: Database, user: User) -> None:
    for when in (datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC)):
        with pytest.raises(InvalidInput, match="timestamp"):
            await metrics.record_metrics(db, [sample(user, timestamp=when)])
