"""The sketch of processing time: p95 from the top bins of each hour, and the whole sketches
read when those do not reach the 95th percentile."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from stratus_sql import Database
from stratus_sql.queries import _sketch, metrics, users
from tests.checks import assert_close


def sketch_of(values: list[float]) -> tuple[list[int], list[int]]:
    """An hour's sketch as the rollups keep it: bins ascending, counts alongside."""
    bins: dict[int, int] = {}
    for v in values:
        k = math.ceil(math.log(v) / math.log(_sketch.GAMMA)) if v > 0 else _sketch.ZERO_BIN
        bins[k] = bins.get(k, 0) + 1
    ordered = sorted(bins.items())
    return [k for k, _ in ordered], [n for _, n in ordered]


def top_bins_or_refusal(seed: int) -> bool:
    """Random hours, each giving its top bins: True when they give the whole sketches' p95,
    False when they say they cannot (asserting it is one or the other)."""
    rng = random.Random(seed)
    hours = []
    for _ in range(rng.randint(1, 30)):
        low = rng.choice([1.0, 10.0, 100.0, 1000.0])
        hours.append(
            [rng.uniform(low, low * rng.uniform(1.1, 50)) for _ in range(rng.randint(1, 300))]
        )
    tail = rng.choice([1, 4, 32])
    whole_bins, whole_counts, top_bins, top_counts, cut_at = [], [], [], [], []
    for values in hours:
        bins, counts = sketch_of(values)
        whole_bins += bins
        whole_counts += counts
        top_bins += bins[-tail:]
        top_counts += counts[-tail:]
        if len(bins) > tail:
            cut_at.append(bins[-tail])
    whole = _sketch.p95(whole_bins, whole_counts)
    total = sum(len(values) for values in hours)
    try:
        top = _sketch.p95(top_bins, top_counts, total, max(cut_at, default=None))
    except _sketch.Incomplete:
        assert cut_at, "whole sketches always answer"
        return False
    assert top == whole
    return True


def test_the_top_bins_give_the_whole_sketches_p95_or_say_they_cannot() -> None:
    answered = [top_bins_or_refusal(seed) for seed in range(40)]
    # Both ways are taken: the comparison is not vacuous, nor the refusal untried.
    assert answered.count(True) >= 5
    assert answered.count(False) >= 5


def test_the_top_bins_answer_a_steady_load_and_refuse_a_slow_outlier() -> None:
    rng = random.Random(1)
    steady = [[rng.uniform(10, 1000) for _ in range(200)] for _ in range(24)]
    slow = [*steady[:23], [rng.uniform(20_000, 200_000) for _ in range(200)]]
    for hours, answers in ((steady, True), (slow, False)):
        sketches = [sketch_of(values) for values in hours]
        top_bins = [k for bins, _ in sketches for k in bins[-32:]]
        top_counts = [n for _, counts in sketches for n in counts[-32:]]
        cut_at = max(bins[-32] for bins, _ in sketches)
        if answers:
            whole = _sketch.p95(
                [k for bins, _ in sketches for k in bins],
                [n for _, counts in sketches for n in counts],
            )
            assert _sketch.p95(top_bins, top_counts, 4800, cut_at) == whole
        else:
            with pytest.raises(_sketch.Incomplete):
                _sketch.p95(top_bins, top_counts, 4800, cut_at)


async def test_an_hour_much_slower_than_its_bucket_keeps_the_p95(db: Database) -> None:
    """One hour of a day ten times slower than the rest: its lower bins hold most of the day's
    top 5%, so the series must read the whole sketches (its top bins alone would put p95
    about 14% low)."""
    owner = await users.create_user(
        db, name="Lenta", email=f"lenta.{uuid.uuid4().hex[:10]}@example.com", role="pilot"
    )
    rng = random.Random(7)
    now = datetime(1961, 3, 3, 12, tzinfo=UTC)
    samples = [
        {
            "user_id": owner.user_id,
            "ia_efficiency": rng.random(),
            "model_accuracy": rng.random(),
            "processing_time_ms": rng.uniform(20_000, 200_000)
            if hour == 5
            else rng.uniform(10, 1000),
            "memory_usage_mb": 512.0,
            "error_rate": rng.random(),
            "timestamp": now - timedelta(hours=24 - hour, seconds=-17 * i),
        }
        for hour in range(24)
        for i in range(200)
    ]
    await metrics.record_metrics(db, samples)
    for at in (now, now + timedelta(minutes=17, microseconds=3)):  # on the hour, and off
        for period in ("7d", "30d"):
            rolled = await metrics.dashboard_series(
                db, period=period, now=at, user_id=owner.user_id
            )
            exact = await metrics.dashboard_series(
                db, period=period, now=at, user_id=owner.user_id, exact=True
            )
            assert_close(rolled, exact)
            assert sum(b.samples for b in rolled) == len(samples)
