"""Sample data: the admin, the "AI Monitoring Dashboard", and AI metric samples.

`stratus-sql seed` (and `make demo`) call `seed()`. The admin user and the dashboards are
found or created, so running it again never duplicates them; every run adds its samples.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from stratus_sql.engine import Executor
from stratus_sql.errors import InvalidInput
from stratus_sql.queries import dashboards, metrics, users
from stratus_sql.records import Dashboard, User

__all__ = ["ADMIN_EMAIL", "DASHBOARD_NAME", "SeedReport", "progress_bar", "seed"]

ADMIN_EMAIL = "admin@example.com"
DASHBOARD_NAME = "AI Monitoring Dashboard"
WINDOW = timedelta(days=30)
BATCH = 10_000

# (low, high) of each statistic; the rates and times follow a daily cycle inside them.
RANGES = {
    "ia_efficiency": (0.75, 0.98),
    "model_accuracy": (0.85, 0.99),
    "processing_time_ms": (50.0, 500.0),
    "memory_usage_mb": (128.0, 1024.0),
    "error_rate": (0.0, 0.05),
}


@dataclass(frozen=True, slots=True)
class SeedReport:
    admin: User
    dashboard: Dashboard
    users: int
    samples: int


async def seed(
    db: Executor,
    *,
    samples: int = 720,
    users_count: int = 1,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    rng: random.Random | None = None,
) -> SeedReport:
    """Find or create the admin (and `users_count - 1` pilots), each with an "AI Monitoring
    Dashboard", then store `samples` samples spread evenly over the 30 days before `now`
    (720: one an hour), round-robin over the users."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise InvalidInput(f"samples: expected an integer >= 0, got {samples!r:.30}")
    if isinstance(users_count, bool) or not isinstance(users_count, int) or users_count < 1:
        raise InvalidInput(f"users: expected an integer >= 1, got {users_count!r:.30}")
    rng = rng or random.Random()
    now = now or datetime.now(UTC)
    owners = [await _user(db, ADMIN_EMAIL, "Admin", "admin")]
    for i in range(1, users_count):
        owners.append(await _user(db, f"piloto{i:04d}@example.com", f"Piloto {i:04d}", "pilot"))
    boards = [await _dashboard(db, owner.user_id) for owner in owners]
    step = WINDOW / samples if samples else WINDOW
    stored = 0
    while stored < samples:
        batch = []
        for i in range(stored, min(samples, stored + BATCH)):
            owner = i % len(owners)
            when = now - WINDOW + step * (i + 1) - timedelta(microseconds=1)
            batch.append(_sample(rng, owners[owner].user_id, boards[owner].dashboard_id, when))
        stored += await metrics.record_metrics(db, batch)
        if progress is not None:
            progress(stored, samples)
    return SeedReport(owners[0], boards[0], len(owners), stored)


async def _user(db: Executor, email: str, name: str, role: str) -> User:
    found = await users.get_user_by_email(db, email)
    return found or await users.create_user(db, name=name, email=email, role=role)


async def _dashboard(db: Executor, user_id: UUID) -> Dashboard:
    found = await dashboards.get_dashboard_by_name(db, user_id, DASHBOARD_NAME)
    return found or await dashboards.create_dashboard(db, user_id=user_id, name=DASHBOARD_NAME)


def _sample(
    rng: random.Random, user_id: UUID, dashboard_id: UUID, when: datetime
) -> dict[str, Any]:
    # Busier in the Brazilian day (UTC-3): slower, hungrier and a little less accurate.
    load = (1 + math.sin((when.hour - 9) / 24 * 2 * math.pi)) / 2
    values: dict[str, Any] = {}
    for name, (low, high) in RANGES.items():
        busy = load if name in ("processing_time_ms", "memory_usage_mb", "error_rate") else 1 - load
        share = min(1.0, max(0.0, 0.6 * busy + 0.4 * rng.random()))
        values[name] = low + share * (high - low)
    return {
        **values,
        "user_id": user_id,
        "dashboard_id": dashboard_id,
        "timestamp": when,
        "periodo": "1h",
    }


def progress_bar(done: int, total: int) -> None:
    """A one-line progress bar on stderr."""
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    bar = "#" * filled + "." * (width - filled)
    print(f"\rseeding [{bar}] {done:,}/{total:,} samples", end=end, file=sys.stderr, flush=True)
