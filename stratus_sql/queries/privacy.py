"""LGPD rights: everything stored about a person (export), and erasure.

Re-exported by `queries.users` as `users.export_user_data` and `users.erase_user`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from stratus_sql.cache import memory_written
from stratus_sql.engine import Executor, Json
from stratus_sql.errors import Conflict, NotFound, StratusError, UsageError
from stratus_sql.queries import audit
from stratus_sql.queries._input import uuid_arg
from stratus_sql.records import (
    ApiKey,
    AuditEntry,
    Conversation,
    Dashboard,
    MemoryEntry,
    Message,
    Metric,
    MetricRollup,
    User,
)
from stratus_sql.sqlfiles import load_queries

__all__ = ["ERASED_NAME", "erase_user", "export_user_data", "is_erased"]

STATEMENTS = load_queries("privacy")
USERS = load_queries("users")
AUDIT = load_queries("audit")
DASHBOARDS = load_queries("dashboards")
API_KEYS = load_queries("api_keys")

ERASED_NAME = "Usuário removido"


def is_erased(user: User) -> bool:
    """Whether the profile is what `erase_user` leaves behind."""
    return user.email == f"erased.{user.user_id}@erased.invalid"


async def _user(db: Executor, user_id: UUID | str) -> User:
    uid = uuid_arg(user_id, "user_id")
    user = await db.fetch_one(User, USERS.get_user, user_id=uid)
    if user is None:
        raise NotFound(f"no user {uid}")
    return user


async def export_user_data(db: Executor, user_id: UUID | str) -> dict[str, Any]:
    """Everything stored about a person, as JSON-ready data: the profile, conversations with
    their messages (live and archived), the messages they wrote in other people's
    conversations (live and archived), memories (expired ones too), dashboards, metric
    samples and their hourly rollups, API keys (their ids and times: the layer keeps no
    key, and the export shows no hash), and the audit rows about them. The export itself is
    recorded in the audit trail (action EXPORT). NotFound if there is no such user.

    Statements, in order: `get_user` (users), `user_conversations`, `user_messages`,
    `user_archived_messages`, `user_memories`, `list_dashboards` (dashboards),
    `user_metrics`, `user_rollups`, `list_api_keys` (api_keys), `audit_about_user`,
    `record_audit_event`.
    """
    async with db.transaction() as tx:
        user = await _user(tx, user_id)
        uid = user.user_id
        chats = await tx.fetch_many(Conversation, STATEMENTS.user_conversations, user_id=uid)
        live = await tx.fetch_many(Message, STATEMENTS.user_messages, user_id=uid)
        archived = await tx.fetch_many(Message, STATEMENTS.user_archived_messages, user_id=uid)
        memories = await tx.fetch_many(MemoryEntry, STATEMENTS.user_memories, user_id=uid)
        boards = await tx.fetch_many(Dashboard, DASHBOARDS.list_dashboards, user_id=uid)
        samples = await tx.fetch_many(Metric, STATEMENTS.user_metrics, user_id=uid)
        rollups = await tx.fetch_many(MetricRollup, STATEMENTS.user_rollups, user_id=uid)
        keys = await tx.fetch_many(ApiKey, API_KEYS.list_api_keys, user_id=uid)
        trail = await tx.fetch_many(AuditEntry, STATEMENTS.audit_about_user, user_id=uid)
        await tx.execute(
            STATEMENTS.record_audit_event,
            action="EXPORT",
            user_id=uid,
            details=Json({"conversations": len(chats), "memories": len(memories)}),
        )

    def by_conversation(messages: list[Message], conversation_id: UUID) -> list[Any]:
        return [_json(m) for m in messages if m.conversation_id == conversation_id]

    own = {chat.conversation_id for chat in chats}

    def elsewhere(messages: list[Message]) -> list[Any]:
        return [_json(m) for m in messages if m.conversation_id not in own]

    return {
        "user": _json(user),
        "conversations": [
            {
                **_json(chat),
                "messages": by_conversation(live, chat.conversation_id),
                "archived_messages": by_conversation(archived, chat.conversation_id),
            }
            for chat in chats
        ],
        # What they wrote in other people's conversations (erase_user deletes it too).
        "messages_in_other_conversations": elsewhere(live),
        "archived_messages_in_other_conversations": elsewhere(archived),
        "memories": [_json(m) for m in memories],
        "dashboards": [_json(b) for b in boards],
        "metrics": [_json(s) for s in samples],
        "metric_rollups": [_json(r) for r in rollups],
        "api_keys": [_json(k) for k in keys],
        "audit": [_json(a) for a in trail],
    }


async def erase_user(db: Executor, user_id: UUID | str) -> bool:
    """Erase a person, in one transaction that holds their row locked (nothing new can be
    added for them meanwhile):

    - delete their API keys (so no key of theirs authenticates any more), their
      conversations (with every message in them), the messages they wrote in other
      people's conversations, their memories, dashboards, metric samples and hourly metric
      rollups (the organisation's rollups are recomputed without them);
    - replace the profile's personal data (the row stays, anonymized);
    - blank the personal fields of every audit row about their data, and the network
      details of the rows they caused;
    - reseal the audit chain over the rows it rewrote, so `audit.verify` still passes (every
      other row keeps its sealed digest);
    - record one ERASE audit entry;
    - on SQLite, once that has committed, checkpoint the write-ahead log and truncate it,
      so no file of the database still holds the erased values (UsageError inside an open
      transaction, where that cannot be done).

    Returns True when it erased something, False when there was nothing left to erase (a
    second call is a no-op, but a later call still removes data written since).
    NotFound if there is no such user.

    Statements, in order: `lock_user`; `delete_user_api_keys`, `delete_user_metrics`,
    `forget_user_rollups`, `delete_orphan_rollups`, `delete_user_rollups`,
    `delete_user_dashboards`, `delete_user_memories`, `delete_user_conversations`,
    `delete_user_messages`, `delete_user_archived_messages`; then, unless nothing was
    left, `anonymize_user`, `compact_search_index`, `audit_about_user`,
    `audit_caused_by_user`, `allow_audit_redaction`, `redact_audit_about_user`,
    `forget_actor_network`, the seals' (see `audit.reseal`), `end_audit_redaction`,
    `record_audit_event`; after the commit, `flush_erased_pages`.
    """
    uid = uuid_arg(user_id, "user_id")
    async with db.transaction() as tx:
        user = await tx.fetch_one(User, STATEMENTS.lock_user, user_id=uid)
        if user is None:
            raise NotFound(f"no user {uid}")
        counts = {
            "api_keys": await tx.execute_rows(STATEMENTS.delete_user_api_keys, user_id=uid),
            "metrics": await tx.execute_rows(STATEMENTS.delete_user_metrics, user_id=uid),
            "metric_rollups": await _delete_rollups(tx, uid),
            "dashboards": await tx.execute_rows(STATEMENTS.delete_user_dashboards, user_id=uid),
            "memories": await tx.execute_rows(STATEMENTS.delete_user_memories, user_id=uid),
            "conversations": await tx.execute_rows(
                STATEMENTS.delete_user_conversations, user_id=uid
            ),
            "messages": await tx.execute_rows(STATEMENTS.delete_user_messages, user_id=uid)
            + await tx.execute_rows(STATEMENTS.delete_user_archived_messages, user_id=uid),
        }
        nothing_left = is_erased(user) and not any(counts.values())
        if not nothing_left:
            await _erase(tx, uid, counts)
    await _flush_erased_pages(db)
    return not nothing_left


async def _delete_rollups(tx: Executor, uid: UUID) -> int:
    """Delete the user's hourly metric rollups, once the organisation's no longer count
    their samples; returns how many rows went."""
    await tx.execute(STATEMENTS.forget_user_rollups, user_id=uid)
    await tx.execute_rows(STATEMENTS.delete_orphan_rollups, user_id=uid)
    return await tx.execute_rows(STATEMENTS.delete_user_rollups, user_id=uid)


async def _erase(tx: Executor, uid: UUID, counts: dict[str, int]) -> None:
    """Steps 2 to 7 of erase_user, after the deletions counted in `counts`."""
    await tx.execute_rows(STATEMENTS.anonymize_user, user_id=uid)
    memory_written(tx, uid)
    await tx.execute(STATEMENTS.compact_search_index)
    about = await tx.fetch_many(AuditEntry, STATEMENTS.audit_about_user, user_id=uid)
    caused = await tx.fetch_many(AuditEntry, AUDIT.audit_caused_by_user, user_id=uid)
    await tx.execute(STATEMENTS.allow_audit_redaction)
    redacted = await tx.execute_rows(STATEMENTS.redact_audit_about_user, user_id=uid)
    redacted += await tx.execute_rows(STATEMENTS.forget_actor_network, user_id=uid)
    rewritten = {row.audit_id for row in about} | {row.audit_id for row in caused}
    resealed = await audit.reseal(tx, audit_ids=rewritten)
    await tx.execute(AUDIT.end_audit_redaction)
    await tx.execute(
        STATEMENTS.record_audit_event,
        action="ERASE",
        user_id=uid,
        details=Json({**counts, "audit_rows_redacted": redacted, "seals_rewritten": resealed}),
    )


async def _flush_erased_pages(db: Executor) -> None:
    """On SQLite, after the erasure committed: checkpoint and truncate the WAL, which still
    holds the erased values until then. It cannot run inside an open transaction."""
    try:
        busy = await db.fetch_scalar(STATEMENTS.flush_erased_pages)
    except StratusError as exc:
        if "locked" not in str(exc):
            raise
        raise UsageError(
            "erase_user on SQLite must run outside a transaction: the erased values leave "
            "the write-ahead log only after the erasure commits"
        ) from exc
    if busy:
        raise Conflict(
            "the erasure is committed, but a reader kept SQLite's write-ahead log from being "
            "truncated: the erased values are still in the -wal file; call erase_user again"
        )


def _json(record: Any) -> Any:
    return record.model_dump(mode="json")
