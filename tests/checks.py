"""Small typed helpers the test modules share."""

from __future__ import annotations

from typing import TypeVar

import pytest

from stratus_sql.records import MetricBucket
from stratus_sql.sqlfiles import NamedStatement, parse

T = TypeVar("T")


def present(value: T | None) -> T:
    """`value`, which the test expects to be there (a row it wrote, say): None fails the test."""
    assert value is not None, "expected a value, got None"
    return value


def adhoc(spec: str, **sql: str) -> NamedStatement:
    """A named statement made by a test, to run SQL of its own through an executor (inside a
    transaction: on that transaction's connection). `spec` is what follows `-- name:`, e.g.
    `actor_settings :one -> ActorSettings`; `sql` gives its SQL by dialect."""
    name = spec.split()[0]
    return NamedStatement(
        name,
        {dialect: parse(f"-- name: {spec}\n{text}", dialect)[0] for dialect, text in sql.items()},
    )


def assert_close(rolled: list[MetricBucket], exact: list[MetricBucket]) -> None:
    """The default series equals the exact one, p95 within the sketch's 1%."""
    assert [b.bucket_start for b in rolled] == [b.bucket_start for b in exact]
    for got, want in zip(rolled, exact, strict=True):
        assert got.samples == want.samples, got.bucket_start
        assert got.error_rate_max == want.error_rate_max
        for name in ("ia_efficiency", "model_accuracy", "processing_time_ms", "memory_usage_mb"):
            value = getattr(want, name)
            if value is None:
                assert getattr(got, name) is None
            else:
                assert getattr(got, name) == pytest.approx(value, rel=1e-9, abs=1e-12)
        if want.processing_time_p95_ms is None:
            assert got.processing_time_p95_ms is None
        else:
            assert got.processing_time_p95_ms == pytest.approx(
                want.processing_time_p95_ms, rel=0.01 + 1e-12, abs=1e-12
            )
