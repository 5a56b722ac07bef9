"""The mixed load of `make load` and of the failover tests: what the simulated users do, an
open-loop driver that starts requests at a fixed rate whatever the answers do, a ledger of
every write the layer acknowledged, and the audit of that ledger against the database.

Open loop: arrivals are a Poisson process (exponential gaps at `rate` a second); each request
runs as its own task at its intended start, and its latency is counted from that intended
start, so a stall of the database or of this process shows up as the queueing delay users
would see, not as fewer requests sent (no coordinated omission). Latencies go into an
HdrHistogram per operation, in microseconds (3 significant digits).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from hdrh.histogram import HdrHistogram

import stratus_sql
from stratus_sql.queries import conversations, memory, metrics, users

__all__ = [
    "MIX",
    "WRITES",
    "Ledger",
    "Outcome",
    "Person",
    "audit",
    "make_users",
    "one_request",
    "open_loop",
    "percentiles",
]

WORDS = [
    "altímetro", "pouso", "decolagem", "vento", "través",
    "checklist", "motor", "hélice", "flape", "trem",
]  # fmt: skip

# operation -> share of requests: mostly messages, as in a conversation-heavy service
MIX: dict[str, float] = {
    "add_message": 0.50,
    "create_conversation": 0.08,
    "store_memory": 0.15,
    "search_memories": 0.15,
    "record_metric": 0.07,
    "dashboard_series": 0.05,
}
WRITES: dict[str, float] = {
    "add_message": 0.55,
    "create_conversation": 0.10,
    "store_memory": 0.20,
    "record_metric": 0.15,
}
_MAX_MICROSECONDS = 120_000_000


@dataclass
class Outcome:
    """When a request was meant to start, when it ended, and how."""

    operation: str
    intended: float
    ended: float
    error: str | None  # the StratusError's class name, or "untyped: <class>"


@dataclass
class Ledger:
    """What the layer acknowledged, what it could not say, and how long each request took."""

    histograms: dict[str, HdrHistogram] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: list[Outcome] = field(default_factory=list)
    conversations: dict[UUID, int] = field(default_factory=dict)  # id -> messages acked
    unknown_messages: Counter[UUID] = field(default_factory=Counter)  # id -> CommitUnknown
    unknown_conversations: Counter[UUID] = field(default_factory=Counter)  # per user
    messages: set[UUID] = field(default_factory=set)
    memories: set[tuple[UUID, str]] = field(default_factory=set)
    metrics: set[UUID] = field(default_factory=set)
    unknown_metrics: int = 0
    started: float = field(default_factory=time.monotonic)

    def histogram(self, operation: str) -> HdrHistogram:
        if operation not in self.histograms:
            self.histograms[operation] = HdrHistogram(1, _MAX_MICROSECONDS, 3)
        return self.histograms[operation]

    async def timed(self, operation: str, intended: float, call: Awaitable[object]) -> object:
        """Runs `call`; its latency from `intended` (a time.monotonic() value) is recorded
        when it succeeds. Returns its result, or the StratusError it raised."""
        try:
            result: object = await call
        except stratus_sql.StratusError as exc:
            result, error = exc, type(exc).__name__
        except Exception as exc:  # a driver exception escaping the layer: a defect
            result, error = exc, f"untyped: {type(exc).__module__}.{type(exc).__name__}"
        else:
            error = None
        ended = time.monotonic()
        self.outcomes.append(Outcome(operation, intended, ended, error))
        if error is None:
            elapsed = round((ended - intended) * 1_000_000)
            self.histogram(operation).record_value(min(max(elapsed, 1), _MAX_MICROSECONDS))
        else:
            self.errors[f"{operation}: {error}"] += 1
        return result

    def first_ack_after(self, moment: float, operations: Sequence[str]) -> float | None:
        """Seconds from `moment` to the first acknowledged write meant to start after it."""
        acked = [
            o.ended
            for o in self.outcomes
            if o.error is None and o.operation in operations and o.intended >= moment
        ]
        return min(acked) - moment if acked else None

    def longest_gap(self, start: float, end: float, operations: Sequence[str]) -> float:
        """The longest time between `start` and `end` in which no write was acknowledged
        (the ends of acknowledged writes, and the bounds, taken in order)."""
        ends = sorted(
            o.ended
            for o in self.outcomes
            if o.error is None and o.operation in operations and start <= o.ended <= end
        )
        moments = [start, *ends, end]
        return max(b - a for a, b in itertools.pairwise(moments))


@dataclass
class Person:
    user_id: UUID
    conversations: list[UUID] = field(default_factory=list)


async def make_users(db: stratus_sql.Database, count: int, tag: str) -> list[Person]:
    made = []
    for n in range(count):
        user = await users.create_user(
            db, name=f"Piloto {n}", email=f"piloto{n}.{tag}@example.com", role="pilot"
        )
        made.append(Person(user.user_id))
    return made


async def one_request(
    db: stratus_sql.Database,
    ledger: Ledger,
    person: Person,
    operation: str,
    intended: float,
    rng: random.Random,
) -> None:
    uid = person.user_id
    if operation == "add_message" and not person.conversations:
        operation = "create_conversation"
    if operation == "create_conversation":
        made = await ledger.timed(
            operation, intended, conversations.create_conversation(db, user_id=uid, title="Voo")
        )
        if isinstance(made, stratus_sql.records.Conversation):
            person.conversations.append(made.conversation_id)
            ledger.conversations[made.conversation_id] = 0
        elif isinstance(made, stratus_sql.CommitUnknown):
            ledger.unknown_conversations[uid] += 1
    elif operation == "add_message":
        cid = rng.choice(person.conversations)
        sent = await ledger.timed(
            operation,
            intended,
            conversations.add_message(
                db,
                conversation_id=cid,
                user_id=uid,
                content=" ".join(rng.choices(WORDS, k=12)),
                message_type=rng.choice(["user_input", "agent_response"]),
                tokens_used=rng.randint(5, 500),
                response_time=rng.random(),
            ),
        )
        if isinstance(sent, stratus_sql.records.Message):
            ledger.messages.add(sent.message_id)
            ledger.conversations[cid] += 1
        elif isinstance(sent, stratus_sql.CommitUnknown):
            ledger.unknown_messages[cid] += 1
    elif operation == "store_memory":
        key = f"nota-{rng.randint(0, 50)}"
        stored = await ledger.timed(
            operation,
            intended,
            memory.store_memory(
                db,
                user_id=uid,
                key=key,
                value={"texto": " ".join(rng.choices(WORDS, k=6))},
                memory_type="medium_term",
                importance_score=rng.random(),
            ),
        )
        if isinstance(stored, stratus_sql.records.MemoryEntry):
            ledger.memories.add((uid, key))
    elif operation == "search_memories":
        await ledger.timed(operation, intended, memory.search_memories(db, uid, rng.choice(WORDS)))
    elif operation == "record_metric":
        sample = await ledger.timed(
            operation,
            intended,
            metrics.record_metric(
                db,
                user_id=uid,
                ia_efficiency=rng.random(),
                model_accuracy=rng.random(),
                processing_time_ms=rng.uniform(50, 500),
                memory_usage_mb=rng.uniform(100, 900),
                error_rate=rng.random() / 10,
            ),
        )
        if isinstance(sample, stratus_sql.records.Metric):
            ledger.metrics.add(sample.metric_id)
        elif isinstance(sample, stratus_sql.CommitUnknown):
            ledger.unknown_metrics += 1
    elif operation == "dashboard_series":
        await ledger.timed(operation, intended, metrics.dashboard_series(db, user_id=uid))
    else:
        raise ValueError(f"unknown operation {operation!r}")


async def open_loop(
    db: stratus_sql.Database,
    ledger: Ledger,
    people: Sequence[Person],
    *,
    rate: float,
    seconds: float,
    mix: dict[str, float] = MIX,
    seed: int = 0,
    at: Callable[[float], None] | None = None,
    stop: asyncio.Event | None = None,
) -> float:
    """Starts requests at `rate` a second (Poisson arrivals) for `seconds`, or until `stop`
    is set, then waits for every one to end; returns the seconds the arrivals lasted.
    `at(elapsed)` is called between arrivals (a bench uses it to cause a fault)."""
    rng = random.Random(seed)
    names, weights = list(mix), list(mix.values())
    begun = time.monotonic()
    intended = begun
    tasks: set[asyncio.Task[None]] = set()
    while True:
        intended += rng.expovariate(rate)
        if intended - begun >= seconds or (stop is not None and stop.is_set()):
            break
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if at is not None:
            at(time.monotonic() - begun)
        operation = rng.choices(names, weights)[0]
        task = asyncio.create_task(
            one_request(db, ledger, rng.choice(people), operation, intended, rng)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return min(seconds, time.monotonic() - begun)


async def audit(url: str, ledger: Ledger, people: Sequence[Person]) -> list[str]:
    """Every acknowledged write is stored exactly once, every counter equals its rows, and
    no more rows exist than were acknowledged plus the writes whose outcome was unknown
    (CommitUnknown: each may or may not have been applied, once)."""
    problems = []
    ids = [p.user_id for p in people]
    conn = await asyncpg.connect(url)
    try:
        stored = {
            r[0]: (r[1], r[2], r[3])
            for r in await conn.fetch(
                "SELECT c.conversation_id, c.user_id, c.message_count,"
                " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.conversation_id)"
                " FROM conversations c WHERE c.user_id = ANY($1::uuid[])",
                ids,
            )
        }
        for cid, acked in ledger.conversations.items():
            if cid not in stored:
                problems.append(f"conversation {cid} acknowledged but missing")
                continue
            _, count, rows = stored[cid]
            unknown = ledger.unknown_messages[cid]
            if count != rows or not acked <= rows <= acked + unknown:
                problems.append(
                    f"conversation {cid}: message_count {count}, rows {rows}, acknowledged "
                    f"{acked}, unknown {unknown}"
                )
        per_user = Counter(user for user, _, _ in stored.values())
        acked_per_user = Counter(
            p.user_id for p in people for cid in p.conversations if cid in ledger.conversations
        )
        for uid, count in per_user.items():
            if count > acked_per_user[uid] + ledger.unknown_conversations[uid]:
                problems.append(f"user {uid}: {count} conversations stored, more than written")
        found = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE message_id = ANY($1::uuid[])",
            list(ledger.messages),
        )
        if found != len(ledger.messages):
            problems.append(f"messages: {len(ledger.messages)} acknowledged, {found} stored")
        found = await conn.fetchval(
            "SELECT count(*) FROM metrics WHERE metric_id = ANY($1::uuid[])", list(ledger.metrics)
        )
        if found != len(ledger.metrics):
            problems.append(f"metrics: {len(ledger.metrics)} acknowledged, {found} stored")
        total = await conn.fetchval(
            "SELECT count(*) FROM metrics WHERE user_id = ANY($1::uuid[])", ids
        )
        if total > len(ledger.metrics) + ledger.unknown_metrics:
            problems.append(f"metrics: {total} stored, more than written")
        kept = {
            (r[0], r[1])
            for r in await conn.fetch(
                "SELECT user_id, key FROM memory_entries WHERE user_id = ANY($1::uuid[])", ids
            )
        }
        if missing := ledger.memories - kept:
            problems.append(f"memories: {len(missing)} acknowledged but missing")
    finally:
        await conn.close()
    return problems


def percentiles(histogram: HdrHistogram) -> tuple[float, float, float, float]:
    """p50, p99, p99.9 and max, in milliseconds."""
    return (
        histogram.get_value_at_percentile(50) / 1000,
        histogram.get_value_at_percentile(99) / 1000,
        histogram.get_value_at_percentile(99.9) / 1000,
        histogram.get_max_value() / 1000,
    )
