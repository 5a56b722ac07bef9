"""The dashboard plan's data function, now reading persisted metrics.

`generate_data(periodo)` returns the dict the plan's web interface draws, built from the
buckets of `metrics.dashboard_series`. When the database is unavailable it is the last good
series of this Database, with `stale` True and its age; with none, the error propagates.
Nothing is ever made up.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from stratus_sql.database import Database
from stratus_sql.errors import UsageError
from stratus_sql.queries import metrics

__all__ = ["generate_data"]

# the plan's key -> MetricBucket field
FIELDS = {
    "ia_efficiency": "ia_efficiency",
    "model_accuracy": "model_accuracy",
    "processing_time": "processing_time_ms",
    "processing_time_p95": "processing_time_p95_ms",
    "memory_usage": "memory_usage_mb",
    "error_rate": "error_rate",
    "error_rate_max": "error_rate_max",
}


async def generate_data(
    periodo: str = "24h",
    *,
    db: Database,
    dashboard_id: UUID | str | None = None,
    user_id: UUID | str | None = None,
) -> dict[str, Any]:
    """The series of `periodo` (24h, 7d or 30d) as the plan's dict: `periodo`,
    `timestamps` (ISO 8601, UTC, each bucket's start), one list per statistic aligned with
    them (`ia_efficiency`, `model_accuracy`, `error_rate`, `error_rate_max` as fractions in
    [0, 1]; `processing_time`, `processing_time_p95` in ms; `memory_usage` in MB; None for
    a bucket without samples), `samples` per bucket, and `stale` / `age_seconds` (see
    `dashboard_series(..., allow_stale=True)`). Of one dashboard, one user, or everyone's.
    InvalidInput for another period (the plan's "all" included: a series has fixed buckets).
    """
    if not isinstance(db, Database):
        raise UsageError("generate_data needs a Database (its last good series live there)")
    series = await metrics.dashboard_series(
        db, period=periodo, user_id=user_id, dashboard_id=dashboard_id, allow_stale=True
    )
    buckets = series.buckets
    data: dict[str, Any] = {
        "periodo": periodo,
        "timestamps": [b.bucket_start.isoformat() for b in buckets],
        "samples": [b.samples for b in buckets],
    }
    for key, field in FIELDS.items():
        data[key] = [getattr(b, field) for b in buckets]
    data["stale"] = series.stale
    data["age_seconds"] = series.age_seconds
    return data
