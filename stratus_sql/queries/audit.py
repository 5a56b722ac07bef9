"""The audit trail: reading it, and its tamper evidence.

Database triggers write `audit_log` (see the README); this module reads it and keeps a hash
chain over it. `seal` hashes the rows not yet sealed, in id order, into a new link of the
chain: each row's SHA-256 over its canonical JSON, and a link digest over the previous link's
digest and those row digests. `verify` recomputes everything and names the first row that
was altered, inserted into a sealed range, or removed.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

import orjson
from pydantic import Field

from stratus_sql.engine import Executor, Json
from stratus_sql.errors import UsageError
from stratus_sql.queries._input import (
    Input,
    NoNul,
    int_arg,
    moment_arg,
    month_arg,
    uuid_arg,
    validate,
)
from stratus_sql.records import AuditEntry, AuditSeal
from stratus_sql.sqlfiles import load_queries

__all__ = [
    "AUDITED_TABLES",
    "Verification",
    "list_audit",
    "maintain",
    "prune",
    "reseal",
    "row_digest",
    "seal",
    "verify",
]

STATEMENTS = load_queries("audit")

AUDITED_TABLES = ("users", "conversations", "memory_entries", "dashboards", "api_keys")
SEAL_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Verification:
    """What `verify` found: `ok`, or the first problem, the row and the seal it concerns."""

    ok: bool
    rows_checked: int
    seals_checked: int
    problem: str | None = None
    audit_id: int | None = None
    seal_id: int | None = None


class _Filters(Input):
    table_name: Annotated[str, Field(strict=True, min_length=1, max_length=63), NoNul] | None
    limit: Annotated[int, Field(strict=True, ge=1, le=1000)]
    before: Annotated[int, Field(strict=True, ge=1)] | None


async def list_audit(
    db: Executor,
    *,
    table_name: str | None = None,
    record_id: UUID | str | None = None,
    user_id: UUID | str | None = None,
    subject_id: UUID | str | None = None,
    since: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit rows, newest first: of one table, one record, one actor (`user_id`), about one
    person's data (`subject_id`), from `since` on. For the next page pass the last row's
    `audit_id` as `before`."""
    filters = validate(_Filters, table_name=table_name, limit=limit, before=before)
    if since is not None:
        moment_arg(since, "since")
    return await db.fetch_many(
        AuditEntry,
        STATEMENTS.list_audit,
        table_name=filters.table_name,
        record_id=None if record_id is None else uuid_arg(record_id, "record_id"),
        user_id=None if user_id is None else uuid_arg(user_id, "user_id"),
        subject_id=None if subject_id is None else uuid_arg(subject_id, "subject_id"),
        since=since,
        before_id=filters.before,
        limit=filters.limit,
    )


def row_digest(entry: AuditEntry) -> str:
    """SHA-256 of a row's canonical JSON (sorted keys, UTC timestamps with microseconds)."""
    document = {
        "audit_id": entry.audit_id,
        "user_id": None if entry.user_id is None else str(entry.user_id),
        "subject_id": None if entry.subject_id is None else str(entry.subject_id),
        "action": entry.action,
        "table_name": entry.table_name,
        "record_id": None if entry.record_id is None else str(entry.record_id),
        "old_values": entry.old_values,
        "new_values": entry.new_values,
        "timestamp": entry.timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
        "ip_address": entry.ip_address,
        "user_agent": entry.user_agent,
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _link_digest(previous: str | None, digests: list[str]) -> str:
    chain = hashlib.sha256((previous or "").encode())
    for digest in digests:
        chain.update(digest.encode())
    return chain.hexdigest()


async def seal(db: Executor, *, wait: float = 5.0) -> int:
    """Seal every audit row that can no longer change; returns how many were sealed.

    The rows sealed are exactly those up to a horizon: the last audit id handed out before
    the call, once every transaction then in progress has ended (on PostgreSQL an id is
    taken before its transaction commits). Sealing waits up to `wait` seconds for those
    transactions and never locks out writers; if they are still open it seals nothing and
    returns 0, to be run again. Seals take turns: concurrent calls never fork the chain.

    Statements, in order: `audit_id_horizon`; `open_transactions` and `count_still_open`
    (waiting for the transactions then in progress); then per batch `lock_audit_chain`,
    `last_seal`, `audit_rows_after`, `add_seal`.
    """
    horizon = int(await db.fetch_scalar(STATEMENTS.audit_id_horizon))
    if not await _transactions_settled(db, wait):
        return 0
    sealed = 0
    while True:
        async with db.transaction() as tx:
            await tx.execute(STATEMENTS.lock_audit_chain)
            last = await tx.fetch_one(AuditSeal, STATEMENTS.last_seal)
            rows = await tx.fetch_many(
                AuditEntry,
                STATEMENTS.audit_rows_after,
                after_id=0 if last is None else last.last_audit_id,
                through_id=horizon,
                limit=SEAL_BATCH,
            )
            if not rows:
                return sealed
            digests = [row_digest(row) for row in rows]
            previous = None if last is None else last.digest
            await tx.fetch_one(
                AuditSeal,
                STATEMENTS.add_seal,
                first_audit_id=rows[0].audit_id,
                last_audit_id=rows[-1].audit_id,
                row_digests=Json([[r.audit_id, d] for r, d in zip(rows, digests, strict=True)]),
                previous_digest=previous,
                digest=_link_digest(previous, digests),
            )
        sealed += len(rows)


async def _transactions_settled(db: Executor, wait: float) -> bool:
    """Whether every transaction in progress now has ended, polled for `wait` seconds."""
    value = await db.fetch_scalar(STATEMENTS.open_transactions)
    xids = value if isinstance(value, list) else orjson.loads(value)
    deadline = asyncio.get_running_loop().time() + wait
    while xids:
        if not await db.fetch_scalar(STATEMENTS.count_still_open, xids=Json(xids)):
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def reseal(db: Executor, *, audit_ids: set[int]) -> int:
    """After the rows `audit_ids` were redacted, recompute their digests, and the digests
    of every link from the first one holding them on; returns how many seals changed.

    Every other row keeps the digest it was sealed with, so a row altered behind the
    layer's back stays detectable. Only a transaction that allowed audit redaction (an
    erasure's) may rewrite seals.

    Statements, in order: `lock_audit_chain`, `list_seals`, then per seal
    `audit_rows_between` and `rewrite_seal`.
    """
    if not audit_ids:
        return 0
    await db.execute(STATEMENTS.lock_audit_chain)
    seals = await db.fetch_many(AuditSeal, STATEMENTS.list_seals, from_seal_id=0)
    first = min(audit_ids)
    previous: str | None = seals[0].previous_digest if seals else None
    rewritten = 0
    for link in seals:
        if link.last_audit_id < first:
            previous = link.digest
            continue
        stored = {int(i): str(d) for i, d in link.row_digests}
        touched = sorted(audit_ids.intersection(stored))
        if touched:
            rows = await db.fetch_many(
                AuditEntry, STATEMENTS.audit_rows_between, first_id=touched[0], last_id=touched[-1]
            )
            for row in rows:
                if row.audit_id in audit_ids and row.audit_id in stored:
                    stored[row.audit_id] = row_digest(row)
        ids = sorted(stored)
        digest = _link_digest(previous, [stored[i] for i in ids])
        if digest != link.digest or link.previous_digest != previous:
            await db.execute_rows(
                STATEMENTS.rewrite_seal,
                seal_id=link.seal_id,
                row_digests=Json([[i, stored[i]] for i in ids]),
                previous_digest=previous,
                digest=digest,
            )
            rewritten += 1
        previous = digest
    return rewritten


async def maintain(db: Executor, *, months_ahead: int = 3) -> int:
    """Create the monthly audit_log partitions up to `months_ahead` months from now
    (PostgreSQL; SQLite has none); returns how many were new. Run at least monthly:
    `stratus-sql migrate` and `stratus-sql maintain` do."""
    months_ahead = int_arg(months_ahead, "months_ahead", 0, 120)
    return int(await db.fetch_scalar(STATEMENTS.maintain, months_ahead=months_ahead))


async def prune(db: Executor, *, before: date) -> int:
    """Drop the months of audit_log that end on or before `before` (the first day of a
    month), whole partitions at a time (PostgreSQL only); returns how many.

    The seals that covered dropped rows go too, and a PRUNE row records the digest the
    kept chain starts from, which `verify` accepts as its start.
    """
    if db.dialect != "postgres":
        raise UsageError("pruning drops monthly partitions, which only PostgreSQL has")
    return int(await db.fetch_scalar(STATEMENTS.prune, before=month_arg(before, "before")))


async def verify(db: Executor) -> Verification:
    """Recompute the whole chain; `ok` is False at the first row altered, inserted into a
    sealed range or missing, or at the first link that does not follow from the one
    before.

    Statements, in order: `list_seals`, per seal `audit_rows_between`, and
    `count_prune_anchors` for a chain that starts at a PRUNE.
    """
    seals = await db.fetch_many(AuditSeal, STATEMENTS.list_seals, from_seal_id=0)
    # After a prune the kept chain starts from a digest a PRUNE row recorded.
    previous = seals[0].previous_digest if seals else None
    if previous is not None and not await db.fetch_scalar(
        STATEMENTS.count_prune_anchors, digest=previous
    ):
        return Verification(
            False, 0, 1, "the chain's first seal follows no recorded prune", None, seals[0].seal_id
        )
    rows_checked = 0
    # Rows before the first seal are unsealed only after a prune (the kept chain's start).
    after = seals[0].first_audit_id - 1 if seals and previous is not None else 0
    for count, link in enumerate(seals, start=1):
        problem = await _check_link(db, link, previous, after)
        if problem is not None:
            what, audit_id = problem
            return Verification(False, rows_checked, count, what, audit_id, link.seal_id)
        rows_checked += len(link.row_digests)
        previous, after = link.digest, link.last_audit_id
    return Verification(True, rows_checked, len(seals))


async def _check_link(
    db: Executor, link: AuditSeal, previous: str | None, after: int
) -> tuple[str, int | None] | None:
    """The first problem of one link; rows from `after` + 1 on must all be in it (seals
    cover every id after the previous one, so nothing may appear in between)."""
    expected: dict[int, str] = {}
    try:
        for audit_id, digest in link.row_digests:
            expected[int(audit_id)] = str(digest)
    except (TypeError, ValueError):
        return "the seal's row list is damaged", None
    rows = await db.fetch_many(
        AuditEntry,
        STATEMENTS.audit_rows_between,
        first_id=after + 1,
        last_id=link.last_audit_id,
    )
    found = {row.audit_id: row for row in rows}
    for audit_id in sorted(set(expected) | set(found)):
        if audit_id not in found:
            return "missing: a sealed row is gone", audit_id
        if audit_id not in expected:
            return "inserted: a row appeared inside a sealed range", audit_id
        if row_digest(found[audit_id]) != expected[audit_id]:
            return "altered: a sealed row changed", audit_id
    digests = [expected[i] for i in sorted(expected)]
    if link.previous_digest != previous or link.digest != _link_digest(previous, digests):
        return "the chain is broken at this seal", None
    return None
