"""Conversations and their messages: atomic counters, keyset pages, history compaction.

A message counts in its conversation (`message_count`, `total_tokens`, `updated_at`) through a
database trigger on insert, so the counters are exact under any concurrency and whoever
writes. Compaction moves older messages to an archive; they keep counting.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, Field

from stratus_sql.engine import Executor, Json
from stratus_sql.errors import DatabaseError, InvalidInput, NotFound
from stratus_sql.ids import uuid7
from stratus_sql.queries._input import (
    Input,
    JsonObject,
    NoNul,
    Unpadded,
    decode_cursor,
    encode_cursor,
    int_arg,
    page_limit,
    text,
    uuid_arg,
    validate,
)
from stratus_sql.records import (
    Conversation,
    ConversationStatus,
    Message,
    MessageType,
    Page,
    UsageDay,
)
from stratus_sql.sqlfiles import NamedStatement, load_queries

__all__ = [
    "add_message",
    "archive_conversation",
    "compact_conversation",
    "create_conversation",
    "delete_conversation",
    "get_conversation",
    "list_archived_messages",
    "list_conversations",
    "list_messages",
    "message_cursor",
    "purge_conversations",
    "usage_stats",
]

STATEMENTS = load_queries("conversations")

MAX_CONTENT = 100_000
MAX_TOKENS = 2**31 - 1
MAX_USAGE_DAYS = 366


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number of seconds")
    return value


class _NewConversation(Input):
    title: Annotated[str, text(500), NoNul, Unpadded]
    context: JsonObject


class _NewMessage(Input):
    content: Annotated[
        str, Field(strict=True, max_length=MAX_CONTENT), NoNul, AfterValidator(_not_blank)
    ]
    message_type: MessageType
    agent_name: Annotated[str, text(100), NoNul, Unpadded] | None
    metadata: JsonObject
    tokens_used: Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]
    response_time: Annotated[float, Field(ge=0, strict=True), AfterValidator(_finite)] | None


class _Compaction(Input):
    keep_last: Annotated[int, Field(ge=0, strict=True)]
    summary: Annotated[
        str, Field(strict=True, max_length=MAX_CONTENT), NoNul, AfterValidator(_not_blank)
    ]


class _Status(Input):
    status: ConversationStatus | None


class _Range(Input):
    since: Annotated[date, Field(strict=True)]
    until: Annotated[date, Field(strict=True)]


async def create_conversation(
    db: Executor, *, user_id: UUID | str, title: str, context: dict[str, Any] | None = None
) -> Conversation:
    """Open a conversation for a user. NotFound if the user does not exist."""
    uid = uuid_arg(user_id, "user_id")
    new = validate(_NewConversation, title=title, context={} if context is None else context)
    return _written(
        await db.fetch_one(
            Conversation,
            STATEMENTS.create_conversation,
            conversation_id=uuid7(),
            user_id=uid,
            title=new.title,
            context=Json(new.context),
        ),
        "create_conversation",
    )


async def get_conversation(db: Executor, conversation_id: UUID | str) -> Conversation | None:
    """The conversation with this id, whatever its status, or None."""
    cid = uuid_arg(conversation_id, "conversation_id")
    return await db.fetch_one(Conversation, STATEMENTS.get_conversation, conversation_id=cid)


async def list_conversations(
    db: Executor,
    user_id: UUID | str,
    *,
    status: ConversationStatus | str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> Page[Conversation]:
    """A user's conversations, most recently updated first, `limit` at a time. Deleted ones
    are listed only when `status="deleted"` asks for them.

    Statements: `list_conversations`, or `list_deleted_conversations` for the deleted ones.
    """
    uid = uuid_arg(user_id, "user_id")
    wanted = validate(_Status, status=status).status
    size = page_limit(limit)
    after_time, after_id = (None, None) if after is None else _cursor(after)
    params: dict[str, Any] = {
        "user_id": uid,
        "after_time": after_time,
        "after_id": after_id,
        "limit": size + 1,
    }
    if wanted is ConversationStatus.DELETED:
        rows = await db.fetch_many(Conversation, STATEMENTS.list_deleted_conversations, **params)
    else:
        rows = await db.fetch_many(
            Conversation, STATEMENTS.list_conversations, status=wanted, **params
        )
    return _page(rows, size, lambda c: (c.updated_at, c.conversation_id))


async def archive_conversation(db: Executor, conversation_id: UUID | str) -> Conversation:
    """Archive a conversation. NotFound if it does not exist or is deleted."""
    return await _change(db, STATEMENTS.archive_conversation, conversation_id)


async def delete_conversation(db: Executor, conversation_id: UUID | str) -> Conversation:
    """Mark a conversation deleted: its rows stay, but it leaves every listing and takes no
    more messages. NotFound if it does not exist; deleting twice is harmless."""
    return await _change(db, STATEMENTS.delete_conversation, conversation_id)


async def add_message(
    db: Executor,
    *,
    conversation_id: UUID | str,
    user_id: UUID | str,
    content: str,
    message_type: MessageType | str,
    agent_name: str | None = None,
    metadata: dict[str, Any] | None = None,
    tokens_used: int = 0,
    response_time: float | None = None,
) -> Message:
    """Add a message and count it in its conversation, in one atomic statement.

    `response_time` is in seconds. NotFound if the conversation does not exist or is
    deleted, or the user does not exist; nothing is written then.
    """
    cid = uuid_arg(conversation_id, "conversation_id")
    uid = uuid_arg(user_id, "user_id")
    new = validate(
        _NewMessage,
        content=content,
        message_type=message_type,
        agent_name=agent_name,
        metadata={} if metadata is None else metadata,
        tokens_used=tokens_used,
        response_time=response_time,
    )
    message = await db.fetch_one(
        Message,
        STATEMENTS.add_message,
        message_id=uuid7(),
        conversation_id=cid,
        user_id=uid,
        agent_name=new.agent_name,
        message_type=new.message_type,
        content=new.content,
        metadata=Json(new.metadata),
        tokens_used=new.tokens_used,
        response_time=new.response_time,
    )
    if message is None:
        raise NotFound(f"no conversation {cid} to add a message to (missing or deleted)")
    return message


async def list_messages(
    db: Executor, conversation_id: UUID | str, *, limit: int = 50, before: str | None = None
) -> Page[Message]:
    """A conversation's live messages, newest first, `limit` at a time; pass the page's
    `next_cursor` as `before` for older ones."""
    return await _messages(db, STATEMENTS.list_messages, conversation_id, limit, before)


async def list_archived_messages(
    db: Executor, conversation_id: UUID | str, *, limit: int = 50, before: str | None = None
) -> Page[Message]:
    """The messages compaction archived, newest first, paged like `list_messages`."""
    return await _messages(db, STATEMENTS.list_archived_messages, conversation_id, limit, before)


def message_cursor(created_at: datetime, message_id: UUID | str) -> str:
    """The cursor of a place in `list_messages` or `list_archived_messages`: passed as
    `before`, it lists the messages older than the one created at `created_at` with id
    `message_id`, as the `next_cursor` of a page ending at that message does."""
    return encode_cursor(created_at.isoformat(), str(message_id))


async def compact_conversation(
    db: Executor, conversation_id: UUID | str, *, keep_last: int, summary: str
) -> Conversation:
    """Compress a conversation's history: every message but the newest `keep_last` moves to
    the archive, and `summary` replaces them. The counters keep counting every message.
    NotFound if the conversation does not exist or is deleted.

    Statements, in order: `set_summary`, `archive_old_messages`, `delete_archived_messages`.
    """
    cid = uuid_arg(conversation_id, "conversation_id")
    new = validate(_Compaction, keep_last=keep_last, summary=summary)
    async with db.transaction() as tx:
        # Setting the summary first locks the conversation, so compactions take turns.
        conversation = await tx.fetch_one(
            Conversation, STATEMENTS.set_summary, conversation_id=cid, summary=new.summary
        )
        if conversation is None:
            raise NotFound(f"no conversation {cid} to compact (missing or deleted)")
        await tx.execute_rows(
            STATEMENTS.archive_old_messages, conversation_id=cid, keep_last=new.keep_last
        )
        await tx.execute_rows(STATEMENTS.delete_archived_messages, conversation_id=cid)
    return conversation


async def usage_stats(
    db: Executor, *, user_id: UUID | str | None = None, since: date, until: date
) -> list[UsageDay]:
    """One row per UTC day from `since` to `until` (both included, at most 366 days), gaps
    filled with zeros: conversations started, messages (archived ones included), tokens,
    mean and p95 response time in seconds, and distinct users with messages. All of a
    user's, or everyone's when `user_id` is None."""
    uid = None if user_id is None else uuid_arg(user_id, "user_id")
    span = validate(_Range, since=since, until=until)
    if isinstance(since, datetime) or isinstance(until, datetime):
        raise InvalidInput("since/until: expected dates, not datetimes")
    if span.since.year < 2 or span.until.year > 9998:
        raise InvalidInput("since/until: expected dates between the years 2 and 9998")
    days = (span.until - span.since).days + 1
    if not 1 <= days <= MAX_USAGE_DAYS:
        raise InvalidInput(f"until: expected 0 to {MAX_USAGE_DAYS - 1} days after since")
    return await db.fetch_many(
        UsageDay, STATEMENTS.usage_stats, user_id=uid, since=span.since, until=span.until
    )


async def purge_conversations(db: Executor, *, older_than_days: int, batch_size: int = 1000) -> int:
    """Delete every conversation not updated for `older_than_days` days, with its messages,
    `batch_size` at a time (each batch its own short transaction outside
    `db.transaction()`); each deletion is recorded in the audit trail. Returns the count."""
    older_than_days = int_arg(older_than_days, "older_than_days", 0, 36_500)
    batch_size = int_arg(batch_size, "batch_size", 1, 100_000)
    total = 0
    while True:
        removed = await db.execute_rows(
            STATEMENTS.purge_conversations, days=older_than_days, batch_size=batch_size
        )
        total += removed
        if removed < batch_size:
            return total


async def _change(db: Executor, named: NamedStatement, conversation_id: UUID | str) -> Conversation:
    cid = uuid_arg(conversation_id, "conversation_id")
    conversation = await db.fetch_one(Conversation, named, conversation_id=cid)
    if conversation is None:
        raise NotFound(f"no conversation {cid} (missing or deleted)")
    return conversation


async def _messages(
    db: Executor, named: NamedStatement, conversation_id: UUID | str, limit: int, before: str | None
) -> Page[Message]:
    cid = uuid_arg(conversation_id, "conversation_id")
    size = page_limit(limit)
    before_time, before_id = (None, None) if before is None else _cursor(before)
    rows = await db.fetch_many(
        Message,
        named,
        conversation_id=cid,
        before_time=before_time,
        before_id=before_id,
        limit=size + 1,
    )
    return _page(rows, size, lambda m: (m.created_at, m.message_id))


def _cursor(cursor: str) -> tuple[datetime, UUID]:
    time, ident = decode_cursor(cursor, datetime.fromisoformat, UUID)
    if time.tzinfo is None:
        raise InvalidInput("cursor: not a cursor returned by this listing")
    return time, ident


def _page(rows: list[Any], size: int, key: Any) -> Page[Any]:
    items = rows[:size]
    if len(rows) <= size:
        return Page(items=items, next_cursor=None)
    time, ident = key(items[-1])
    return Page(items=items, next_cursor=encode_cursor(time.isoformat(), str(ident)))


def _written(row: Conversation | None, name: str) -> Conversation:
    if row is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError(f"{name} returned no row")
    return row
