"""The samples `metrics.record_metrics` takes, validated into the rows of its statement."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NotRequired
from uuid import UUID

from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from stratus_sql.errors import InvalidInput
from stratus_sql.ids import uuid7_batch
from stratus_sql.records import Amount, MetricSample, Moment, Periodo, Rate

__all__ = ["sample_rows"]


class _SampleMapping(TypedDict):
    """A sample given as a mapping: the fields and rules of MetricSample, validated as a
    plain dict (twice as fast as building MetricSample instances, measured on bulk loads)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    user_id: UUID
    dashboard_id: NotRequired[UUID | None]
    ia_efficiency: Rate
    model_accuracy: Rate
    processing_time_ms: Amount
    memory_usage_mb: Amount
    error_rate: Rate
    timestamp: NotRequired[Moment | None]
    periodo: NotRequired[Periodo | None]


_MAPPINGS = TypeAdapter(list[_SampleMapping])


def sample_rows(items: list[Any], now: datetime) -> list[tuple[Any, ...]]:
    """The rows of `record_metrics`, validated: metric_id, user_id, dashboard_id,
    ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate,
    timestamp (default `now`), periodo; the statement's parameters, in order."""
    plain: list[tuple[int, Any]] = []
    for i, item in enumerate(items):
        if type(item) is dict or isinstance(
            item, Mapping
        ):  # the common case, without the slower ABC check
            plain.append((i, item))
        elif not isinstance(item, MetricSample):
            raise InvalidInput(
                f"samples[{i}]: expected a MetricSample or a mapping, not {type(item).__name__}"
            )
    try:
        checked = iter(_MAPPINGS.validate_python([m for _, m in plain]))
    except ValidationError as exc:
        error = exc.errors()[0]
        position, *field = error["loc"]
        where = f"samples[{plain[int(position)][0]}]"
        raise InvalidInput(f"{where}.{'.'.join(map(str, field))}: {error['msg']}") from None
    rows = []
    for metric_id, item in zip(uuid7_batch(len(items)), items, strict=True):
        if isinstance(item, MetricSample):
            rows.append(
                (metric_id, item.user_id, item.dashboard_id, item.ia_efficiency,
                 item.model_accuracy, item.processing_time_ms, item.memory_usage_mb,
                 item.error_rate, item.timestamp or now, item.periodo)
            )  # fmt: skip
        else:
            m = next(checked)
            rows.append(
                (metric_id, m["user_id"], m.get("dashboard_id"), m["ia_efficiency"],
                 m["model_accuracy"], m["processing_time_ms"], m["memory_usage_mb"],
                 m["error_rate"], m.get("timestamp") or now, m.get("periodo"))
            )  # fmt: skip
    return rows
