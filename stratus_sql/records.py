"""Enums and the Pydantic records query functions return.

Records are frozen: a record is a snapshot of a row, not a handle to it. Backends build them
from rows by position (`stratus-sql check` matches each statement's columns to the fields),
validated by pydantic-core, which measures as fast as building them unvalidated.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, JsonValue

__all__ = [
    "ConversationStatus",
    "MemoryType",
    "MessageType",
    "Page",
    "Record",
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
    preferences: dict[str, JsonValue]
    created_at: datetime
    last_active: datetime | None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paginated listing; pass `next_cursor` back to get the next one."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_cursor: str | None
