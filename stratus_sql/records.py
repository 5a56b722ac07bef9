"""Enums and the Pydantic records query functions return.

Records are frozen: a record is a snapshot of a row, not a handle to it. Backends build them
from rows by position (`stratus-sql check` matches each statement's columns to the fields),
validated by pydantic-core, which measures as fast as building them unvalidated.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SkipValidation,
    StringConstraints,
)

__all__ = [
    "ApiKey",
    "ApiKeyOwner",
    "AuditEntry",
    "AuditSeal",
    "Conversation",
    "ConversationStatus",
    "Dashboard",
    "MemoryEntry",
    "MemoryHit",
    "MemoryType",
    "Message",
    "MessageType",
    "Metric",
    "MetricBucket",
    "MetricRollup",
    "MetricSample",
    "NewApiKey",
    "Page",
    "Record",
    "ScoredMemoryEntry",
    "SeriesBucket",
    "StaleableSeries",
    "UsageDay",
    "User",
    "UserRole",
]


class UserRole(StrEnum):
    PILOT = "pilot"
    COPILOT = "copilot"
    STUDENT_PILOT = "student_pilot"
    INSTRUCTOR = "instructor"
    MECHANIC = "mechanic"
    DISPATCHER = "dispatcher"
    AIR_TRAFFIC_CONTROLLER = "air_traffic_controller"
    ADMIN = "admin"


class ConversationStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    DELETED = "deleted"


class MessageType(StrEnum):
    USER_INPUT = "user_input"
    AGENT_RESPONSE = "agent_response"
    SYSTEM = "system"


class MemoryType(StrEnum):
    SHORT_TERM = "short_term"
    MEDIUM_TERM = "medium_term"
    LONG_TERM = "long_term"
    CRITICAL = "critical"


# JSON columns hold JSON by construction (jsonb, or SQLite text parsed by orjson):
# validating it again walks every value in Python for nothing (bench/records.py).
JsonObject = Annotated[dict[str, JsonValue], SkipValidation]
AnyJson = Annotated[JsonValue, SkipValidation]


class Record(BaseModel):
    """Base of every record: frozen, compared field by field."""

    model_config = ConfigDict(frozen=True)


class User(Record):
    """A person using the platform: pilot, instructor, mechanic, ..."""

    user_id: UUID
    name: str
    email: str
    role: UserRole
    licenses: list[str]
    experience_level: str | None
    preferences: JsonObject
    created_at: datetime
    last_active: datetime | None


class Conversation(Record):
    """A conversation between a user and the agents; counters include archived messages."""

    conversation_id: UUID
    user_id: UUID
    title: str
    status: ConversationStatus
    context: JsonObject
    summary: str | None
    message_count: int
    total_tokens: int
    created_at: datetime
    updated_at: datetime


class Message(Record):
    """One message of a conversation; `response_time` is in seconds."""

    message_id: UUID
    conversation_id: UUID
    user_id: UUID
    agent_name: str | None
    message_type: MessageType
    content: str
    metadata: JsonObject
    tokens_used: int
    response_time: float | None
    created_at: datetime


class UsageDay(Record):
    """Usage on one UTC day; response times in seconds, None on a day without any."""

    day: date
    conversations_started: int
    messages: int
    tokens: int
    mean_response_time: float | None
    p95_response_time: float | None
    active_users: int


class MemoryEntry(Record):
    """Something an agent remembers about a user; `value` is any JSON value."""

    memory_id: UUID
    user_id: UUID
    memory_type: MemoryType
    key: str
    value: AnyJson
    importance_score: float
    access_count: int
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None
    expires_at: datetime | None


class ScoredMemoryEntry(MemoryEntry):
    """A memory entry with its search score (the row a search statement returns)."""

    score: float


class MemoryHit(Record):
    """One search result: the entry and its score (higher is more relevant)."""

    entry: MemoryEntry
    score: float


class Dashboard(Record):
    """A user's AI monitoring dashboard; its name is unique per user."""

    dashboard_id: UUID
    user_id: UUID
    name: str
    created_at: datetime
    updated_at: datetime


class ApiKey(Record):
    """A user's API key, as stored: its id and times, never the key (only its SHA-256 is
    kept). `revoked_at` is None while the key is active."""

    key_id: UUID
    user_id: UUID
    created_at: datetime
    revoked_at: datetime | None


class NewApiKey(ApiKey):
    """A key just made, with the key itself (`key`), which is shown this once and cannot be
    read back; it is left out of the record's repr."""

    key: str = Field(repr=False)


class ApiKeyOwner(User):
    """The row `api_keys.authenticate` reads: the key's user, with the key's stored SHA-256
    (`key_hash`, left out of its repr) and `revoked_at`."""

    key_hash: bytes = Field(repr=False)
    revoked_at: datetime | None


class Metric(Record):
    """One AI performance sample: rates in [0, 1], times in milliseconds, memory in MB."""

    metric_id: UUID
    user_id: UUID
    dashboard_id: UUID | None
    ia_efficiency: float
    model_accuracy: float
    processing_time_ms: float
    memory_usage_mb: float
    error_rate: float
    timestamp: datetime
    periodo: str | None


def _ordinary_year(value: datetime) -> datetime:
    # Postgres maps the edges of Python's range to +-infinity; keep clear of them.
    if not 2 <= value.year <= 9998:
        raise ValueError("must fall between the years 2 and 9998")
    return value


Moment = Annotated[AwareDatetime, Field(strict=True), AfterValidator(_ordinary_year)]
Rate = Annotated[float, Field(strict=True, ge=0, le=1)]
Amount = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
# A short label (e.g. "1h"), kept as given: no control characters, and no white space at
# either end (refused, not trimmed), checked by pydantic-core's own regex.
Periodo = Annotated[
    str,
    StringConstraints(
        strict=True,
        min_length=1,
        max_length=16,
        pattern=r"^[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$",
    ),
]


class MetricSample(BaseModel):
    """A sample to store with `metrics.record_metrics`: rates in [0, 1], processing time in
    milliseconds and memory in MB (both >= 0 and finite), an aware `timestamp` (default: the
    time of the call) and an optional `periodo` label."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: UUID
    dashboard_id: UUID | None = None
    ia_efficiency: Rate
    model_accuracy: Rate
    processing_time_ms: Amount
    memory_usage_mb: Amount
    error_rate: Rate
    timestamp: Moment | None = None
    periodo: Periodo | None = None


class MetricBucket(Record):
    """One time bucket of a dashboard series: means, p95 processing time and the worst error
    rate of its samples. An empty bucket has samples = 0 and None for every statistic."""

    bucket_start: datetime
    samples: int
    ia_efficiency: float | None
    model_accuracy: float | None
    processing_time_ms: float | None
    memory_usage_mb: float | None
    error_rate: float | None
    processing_time_p95_ms: float | None
    error_rate_max: float | None


class MetricRollup(Record):
    """One hourly rollup of a user's metric samples (`dashboard_id` None: all of them; set:
    that dashboard's): the count, the sum, min and max of each statistic, and the sketch of
    processing time (`{bin: count}`, see the README's "Rollups")."""

    user_id: UUID
    dashboard_id: UUID | None
    hour: datetime
    samples: int
    ia_efficiency_sum: float
    ia_efficiency_min: float
    ia_efficiency_max: float
    model_accuracy_sum: float
    model_accuracy_min: float
    model_accuracy_max: float
    processing_time_ms_sum: float
    processing_time_ms_min: float
    processing_time_ms_max: float
    memory_usage_mb_sum: float
    memory_usage_mb_min: float
    memory_usage_mb_max: float
    error_rate_sum: float
    error_rate_min: float
    error_rate_max: float
    sketch: JsonObject


class SeriesBucket(MetricBucket):
    """A row of the series statements: a MetricBucket before its p95 is estimated, with the
    sketches of processing time of its parts end to end (bins and their counts, a bin
    repeated once per part; rollups only), the bin from which those counts are complete
    (`sketch_complete_from`: some hours gave only their top bins; None when all gave every
    bin), and where the raw samples kept start (`pruned_before`, None when none was
    pruned)."""

    sketch_bins: list[int] | None
    sketch_counts: list[int] | None
    sketch_complete_from: int | None
    pruned_before: datetime | None


class StaleableSeries(Record):
    """What `dashboard_series(..., allow_stale=True)` returns: the buckets, and whether they
    are the last good result kept from an earlier call (`stale`), `age_seconds` old."""

    buckets: list[MetricBucket]
    stale: bool
    age_seconds: float


class AuditEntry(Record):
    """One change recorded by the audit triggers: who (`user_id`, `ip_address`,
    `user_agent`), whose data (`subject_id`, the owner of the row), what (`action` on
    `table_name` row `record_id`) and how (`old_values`, `new_values`: whole rows for
    INSERT and DELETE, the changed columns for UPDATE)."""

    audit_id: int
    user_id: UUID | None
    subject_id: UUID | None
    action: str
    table_name: str
    record_id: UUID | None
    old_values: JsonObject | None
    new_values: JsonObject | None
    timestamp: datetime
    ip_address: str | None
    user_agent: str | None


class AuditSeal(Record):
    """One link of the audit hash chain: the rows it covers and their SHA-256 digests."""

    seal_id: int
    first_audit_id: int
    last_audit_id: int
    row_digests: Annotated[list[Any], SkipValidation]  # [[audit_id, sha256 hex], ...]
    previous_digest: str | None
    digest: str
    sealed_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paginated listing; pass `next_cursor` back to get the next one."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_cursor: str | None
