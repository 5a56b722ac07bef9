"""queries.conversations on both backends."""

from __future__ import annotations

import asyncio
import math
import statistics
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from stratus_sql import Database, InvalidInput, NotFound
from stratus_sql.queries import conversations as conv
from stratus_sql.records import (
    Conversation,
    ConversationStatus,
    Message,
    MessageType,
    Page,
    User,
)
from tests.checks import present


async def test_create_and_get_round_trip(db: Database, user: User) -> None:
    created = await conv.create_conversation(
        db, user_id=user.user_id, title="Consulta meteorológica", context={"rota": "SBGR-SBRJ"}
    )
    assert created.title == "Consulta meteorológica"
    assert created.status is ConversationStatus.ACTIVE
    assert created.context == {"rota": "SBGR-SBRJ"}
    assert (created.summary, created.message_count, created.total_tokens) == (None, 0, 0)
    assert created.created_at == created.updated_at
    assert await conv.get_conversation(db, created.conversation_id) == created
    assert await conv.get_conversation(db, uuid.uuid4()) is None


async def test_create_for_unknown_user_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await conv.create_conversation(db, user_id=uuid.uuid4(), title="x")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "x" * 501),
        ("title", "a\x00"),
        ("title", " Consulta"),
        ("title", "Consulta\t"),
        ("context", [1]),
        ("context", {"k": math.nan}),
    ],
)
async def test_create_rejects_bad_input(
    db: Database, user: User, field: str, value: object
) -> None:
    kwargs: dict[str, object] = {"user_id": user.user_id, "title": "ok", field: value}
    with pytest.raises(InvalidInput, match=field):
        # wrong types on purpose: the refusal is what is tested
        await conv.create_conversation(db, **kwargs)  # type: ignore[arg-type]
    assert (await conv.list_conversations(db, user.user_id)).items == []


async def test_add_message_round_trips_and_counts(db: Database, user: User) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="METAR")
    question = await conv.add_message(
        db,
        conversation_id=c.conversation_id,
        user_id=user.user_id,
        content="Qual o METAR de SBGR?",
        message_type="user_input",
        metadata={"canal": "app"},
        tokens_used=12,
    )
    answer = await conv.add_message(
        db,
        conversation_id=c.conversation_id,
        user_id=user.user_id,
        content="SBGR 211800Z 16008KT 9999 FEW030 24/17 Q1016",
        message_type=MessageType.AGENT_RESPONSE,
        agent_name="meteorologia",
        tokens_used=30,
        response_time=1.25,
    )
    assert question.message_type is MessageType.USER_INPUT
    assert (question.metadata, question.response_time, question.agent_name) == (
        {"canal": "app"},
        None,
        None,
    )
    assert (answer.agent_name, answer.response_time, answer.tokens_used) == (
        "meteorologia",
        1.25,
        30,
    )
    after = await conv.get_conversation(db, c.conversation_id)
    assert after is not None
    assert (after.message_count, after.total_tokens) == (2, 42)
    assert after.updated_at == answer.created_at
    assert (await conv.list_messages(db, c.conversation_id)).items == [answer, question]


async def test_add_message_counts_exactly_under_concurrency(db: Database, user: User) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="Carga")
    await asyncio.gather(
        *(
            conv.add_message(
                db,
                conversation_id=c.conversation_id,
                user_id=user.user_id,
                content=f"mensagem {i}",
                message_type="user_input",
                tokens_used=i,
            )
            for i in range(40)
        )
    )
    after = await conv.get_conversation(db, c.conversation_id)
    assert after is not None
    assert (after.message_count, after.total_tokens) == (40, sum(range(40)))
    page = await conv.list_messages(db, c.conversation_id, limit=100)
    assert len(page.items) == 40


async def test_add_message_to_unknown_or_deleted_conversation_writes_nothing(
    db: Database, user: User
) -> None:
    with pytest.raises(NotFound):
        await conv.add_message(
            db,
            conversation_id=uuid.uuid4(),
            user_id=user.user_id,
            content="x",
            message_type="system",
        )
    c = await conv.create_conversation(db, user_id=user.user_id, title="x")
    await conv.delete_conversation(db, c.conversation_id)
    with pytest.raises(NotFound):
        await conv.add_message(
            db,
            conversation_id=c.conversation_id,
            user_id=user.user_id,
            content="x",
            message_type="system",
        )
    with pytest.raises(NotFound):  # an unknown author
        c2 = await conv.create_conversation(db, user_id=user.user_id, title="y")
        await conv.add_message(
            db,
            conversation_id=c2.conversation_id,
            user_id=uuid.uuid4(),
            content="x",
            message_type="system",
        )
    assert (await conv.list_messages(db, c.conversation_id)).items == []
    assert (await conv.list_messages(db, c2.conversation_id)).items == []
    assert present(await conv.get_conversation(db, c2.conversation_id)).message_count == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content", ""),
        ("content", "   \n"),
        ("content", "x\x00"),
        ("content", "x" * 100_001),
        ("message_type", "question"),
        ("tokens_used", -1),
        ("tokens_used", 2**31),
        ("tokens_used", 1.5),
        ("tokens_used", "3"),
        ("response_time", -0.1),
        ("response_time", math.inf),
        ("response_time", math.nan),
        ("response_time", "1.0"),
        ("agent_name", ""),
        ("agent_name", "x" * 101),
        ("metadata", "texto"),
        ("metadata", {"k": "\x00"}),
    ],
)
async def test_add_message_rejects_bad_input_and_writes_nothing(
    db: Database, user: User, field: str, value: object
) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="x")
    kwargs: dict[str, object] = {
        "conversation_id": c.conversation_id,
        "user_id": user.user_id,
        "content": "ok",
        "message_type": "user_input",
        field: value,
    }
    with pytest.raises(InvalidInput, match=field):
        # wrong types on purpose: the refusal is what is tested
        await conv.add_message(db, **kwargs)  # type: ignore[arg-type]
    assert (await conv.get_conversation(db, c.conversation_id)) == c


async def add_many(db: Database, c: Conversation, user: User, n: int) -> list[Message]:
    """n messages, oldest first; in one transaction, so on Postgres they share a timestamp."""
    async with db.transaction() as tx:
        return [
            await conv.add_message(
                tx,
                conversation_id=c.conversation_id,
                user_id=user.user_id,
                content=f"m{i}",
                message_type="user_input",
            )
            for i in range(n)
        ]


async def page_all(
    fetch: Callable[..., Awaitable[Page[Message]]], limit: int
) -> tuple[list[Message], list[int]]:
    """Every item of a listing, page by page (`fetch(limit=, before=)`), and the page sizes."""
    seen: list[Message] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        page = await fetch(limit=limit, before=cursor)
        seen.extend(page.items)
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            return seen, sizes


async def test_list_messages_pages_newest_first_without_gaps(db: Database, user: User) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="Longa")
    added = await add_many(db, c, user, 120)
    # One transaction: every message has the same created_at, only the id breaks ties.
    assert len({m.created_at for m in added}) == 1
    seen, sizes = await page_all(lambda **k: conv.list_messages(db, c.conversation_id, **k), 50)
    assert sizes == [50, 50, 20]
    assert seen == added[::-1]


async def test_message_cursor_lists_the_messages_older_than_one(db: Database, user: User) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="Cursor")
    added = await add_many(db, c, user, 3)
    page = await conv.list_messages(db, c.conversation_id, limit=2)
    last = page.items[-1]
    assert page.next_cursor == conv.message_cursor(last.created_at, last.message_id)
    older = await conv.list_messages(
        db, c.conversation_id, before=conv.message_cursor(added[1].created_at, added[1].message_id)
    )
    assert older.items == [added[0]]


async def test_list_messages_rejects_bad_cursor_and_limit(db: Database, user: User) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="x")
    no_time_zone = conv.message_cursor(datetime(2026, 1, 1), uuid.uuid4())
    for bad in ("nope", "W1siYSJdXQ", no_time_zone):
        with pytest.raises(InvalidInput, match="cursor"):
            await conv.list_messages(db, c.conversation_id, before=bad)
    with pytest.raises(InvalidInput, match="limit"):
        await conv.list_messages(db, c.conversation_id, limit=0)


async def test_list_conversations_most_recent_first_and_hides_deleted(
    db: Database, user: User
) -> None:
    first = await conv.create_conversation(db, user_id=user.user_id, title="primeira")
    second = await conv.create_conversation(db, user_id=user.user_id, title="segunda")
    third = await conv.create_conversation(db, user_id=user.user_id, title="terceira")
    await conv.add_message(
        db,
        conversation_id=first.conversation_id,
        user_id=user.user_id,
        content="oi",
        message_type="user_input",
    )
    archived = await conv.archive_conversation(db, second.conversation_id)
    deleted = await conv.delete_conversation(db, third.conversation_id)
    assert archived.status is ConversationStatus.ARCHIVED
    assert deleted.status is ConversationStatus.DELETED
    first_now = await conv.get_conversation(db, first.conversation_id)

    listed = await conv.list_conversations(db, user.user_id)
    assert listed.items == [archived, first_now]
    assert (await conv.list_conversations(db, user.user_id, status="active")).items == [first_now]
    assert (await conv.list_conversations(db, user.user_id, status="archived")).items == [archived]
    assert (await conv.list_conversations(db, user.user_id, status="deleted")).items == [deleted]
    deleted_again = await conv.delete_conversation(db, third.conversation_id)
    third_now = present(await conv.get_conversation(db, third.conversation_id))
    assert deleted_again == deleted.model_copy(update={"updated_at": third_now.updated_at})
    with pytest.raises(NotFound):
        await conv.archive_conversation(db, third.conversation_id)
    with pytest.raises(NotFound):
        await conv.delete_conversation(db, uuid.uuid4())


async def test_list_conversations_pages(db: Database, user: User) -> None:
    made = [
        await conv.create_conversation(db, user_id=user.user_id, title=f"c{i}") for i in range(5)
    ]
    seen: list[Conversation] = []
    cursor = None
    while True:
        page = await conv.list_conversations(db, user.user_id, limit=2, after=cursor)
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == made[::-1]
    with pytest.raises(InvalidInput, match="status"):
        await conv.list_conversations(db, user.user_id, status="lost")


async def test_compact_conversation_archives_all_but_the_newest(db: Database, user: User) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="Histórico")
    added = await add_many(db, c, user, 10)
    compacted = await conv.compact_conversation(
        db, c.conversation_id, keep_last=3, summary="Resumo: METAR de SBGR."
    )
    assert compacted.summary == "Resumo: METAR de SBGR."
    assert (compacted.message_count, compacted.total_tokens) == (10, 0)
    newest_first = sorted(added, key=lambda m: (m.created_at, m.message_id), reverse=True)
    assert (await conv.list_messages(db, c.conversation_id)).items == newest_first[:3]
    archived, sizes = await page_all(
        lambda **k: conv.list_archived_messages(db, c.conversation_id, **k), 4
    )
    assert archived == newest_first[3:]
    assert sizes == [4, 3]

    await conv.add_message(
        db,
        conversation_id=c.conversation_id,
        user_id=user.user_id,
        content="nova",
        message_type="user_input",
    )
    again = await conv.compact_conversation(
        db, c.conversation_id, keep_last=0, summary="Tudo arquivado."
    )
    assert (await conv.list_messages(db, c.conversation_id)).items == []
    assert len((await conv.list_archived_messages(db, c.conversation_id)).items) == 11
    assert present(await conv.get_conversation(db, c.conversation_id)).message_count == 11
    assert again.summary == "Tudo arquivado."


async def test_compact_rejects_bad_input_and_missing_conversations(
    db: Database, user: User
) -> None:
    c = await conv.create_conversation(db, user_id=user.user_id, title="x")
    await add_many(db, c, user, 2)
    for kwargs in (
        {"keep_last": -1, "summary": "s"},
        {"keep_last": 1.5, "summary": "s"},
        {"keep_last": 1, "summary": " "},
    ):
        with pytest.raises(InvalidInput):
            # wrong types on purpose: the refusal is what is tested
            await conv.compact_conversation(db, c.conversation_id, **kwargs)  # type: ignore[arg-type]
    assert len((await conv.list_messages(db, c.conversation_id)).items) == 2
    with pytest.raises(NotFound):
        await conv.compact_conversation(db, uuid.uuid4(), keep_last=1, summary="s")


def percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    h = q * (len(ordered) - 1)
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


async def test_usage_stats_by_day_with_gaps_filled(db: Database, user: User) -> None:
    today = datetime.now(UTC).date()
    c = await conv.create_conversation(db, user_id=user.user_id, title="Estatística")
    times = [0.2, 1.5, 0.7, 3.1, 0.9, 2.2, 0.4]
    for i, t in enumerate(times):
        await conv.add_message(
            db,
            conversation_id=c.conversation_id,
            user_id=user.user_id,
            content=f"r{i}",
            message_type="agent_response",
            agent_name="a",
            tokens_used=10 + i,
            response_time=t,
        )
    await conv.add_message(
        db,
        conversation_id=c.conversation_id,
        user_id=user.user_id,
        content="q",
        message_type="user_input",
        tokens_used=5,
    )
    await conv.compact_conversation(db, c.conversation_id, keep_last=2, summary="s")

    days = await conv.usage_stats(
        db, user_id=user.user_id, since=today - timedelta(days=2), until=today + timedelta(days=1)
    )
    assert [d.day for d in days] == [today + timedelta(days=k) for k in (-2, -1, 0, 1)]
    empty = days[0]
    assert (empty.conversations_started, empty.messages, empty.tokens, empty.active_users) == (
        0,
        0,
        0,
        0,
    )
    assert (empty.mean_response_time, empty.p95_response_time) == (None, None)
    day = days[2]
    assert (day.conversations_started, day.messages, day.active_users) == (1, 8, 1)
    assert day.tokens == sum(10 + i for i in range(len(times))) + 5
    assert day.mean_response_time == pytest.approx(statistics.fmean(times))
    assert day.p95_response_time == pytest.approx(percentile_cont(times, 0.95))

    other = await conv.usage_stats(db, user_id=uuid.uuid4(), since=today, until=today)
    assert [(d.messages, d.conversations_started) for d in other] == [(0, 0)]
    everyone = await conv.usage_stats(db, since=today, until=today)
    assert everyone[0].messages >= 8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"since": date(2026, 1, 2), "until": date(2026, 1, 1)},
        {"since": date(2025, 1, 1), "until": date(2026, 1, 2)},
        {"since": "2026-01-01", "until": date(2026, 1, 2)},
        {"since": datetime(2026, 1, 1, tzinfo=UTC), "until": date(2026, 1, 2)},
    ],
)
async def test_usage_stats_rejects_bad_ranges(db: Database, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        # wrong types on purpose: the refusal is what is tested
        await conv.usage_stats(db, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("day", [date.max, date.min])
async def test_usage_stats_refuses_the_edges_of_time(db: Database, day: date) -> None:
    with pytest.raises(InvalidInput):
        await conv.usage_stats(db, since=day, until=day)


async def test_purge_refuses_counts_beyond_its_range(db: Database) -> None:
    for kwargs in ({"older_than_days": 2**40}, {"older_than_days": 1, "batch_size": 10**9}):
        with pytest.raises(InvalidInput):
            await conv.purge_conversations(db, **kwargs)


async def test_bytes_are_refused_as_message_content_and_summary(db: Database, user: User) -> None:
    chat = await conv.create_conversation(db, user_id=user.user_id, title="bytes")
    # wrong types on purpose: the refusal is what is tested
    with pytest.raises(InvalidInput, match="content"):
        await conv.add_message(
            db, conversation_id=chat.conversation_id, user_id=user.user_id,
            content=b"oi", message_type="user_input",  # type: ignore[arg-type]
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="summary"):
        await conv.compact_conversation(
            db,
            chat.conversation_id,
            keep_last=0,
            summary=b"resumo",  # type: ignore[arg-type]
        )
    assert (await conv.get_conversation(db, chat.conversation_id)) == chat
