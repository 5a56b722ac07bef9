"""`make demo`: the platform's usage example, end to end, on the configured database (the
embedded ./stratus.db by default): migrate, seed, a pilot with a memory, a conversation and a
search, then the last 24 hours of the AI dashboard as a table with sparklines."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import orjson

from stratus_sql.cli.seed import seed
from stratus_sql.database import Database, connect
from stratus_sql.errors import StratusError
from stratus_sql.migrations import apply_migrations
from stratus_sql.queries import conversations, memory, metrics, users
from stratus_sql.records import Conversation, MetricBucket, User

EMAIL = "joao.silva@example.com"
TITLE = "Consulta meteorológica"
BARS = "▁▂▃▄▅▆▇█"

# (label, MetricBucket field, number format)
ROWS = (
    ("eficiência da IA", "ia_efficiency", "{:.1%}"),
    ("precisão do modelo", "model_accuracy", "{:.1%}"),
    ("processamento (ms)", "processing_time_ms", "{:.0f}"),
    ("processamento p95 (ms)", "processing_time_p95_ms", "{:.0f}"),
    ("memória (MB)", "memory_usage_mb", "{:.0f}"),
    ("taxa de erro", "error_rate", "{:.2%}"),
    ("pior taxa de erro", "error_rate_max", "{:.2%}"),
)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def sparkline(values: Sequence[float | None]) -> str:
    """One block per value, scaled between the smallest and the largest; blank for None."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    return "".join(
        " " if v is None else BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))]
        for v in values
    )


def dashboard_table(series: Sequence[MetricBucket]) -> str:
    """The series as one row per statistic: min, mean, max and a sparkline."""
    lines = [f"  {'':24}{'mín':>9}{'média':>9}{'máx':>9}   últimas 24 h"]
    for label, field, fmt in ROWS:
        values = [getattr(b, field) for b in series]
        present = [v for v in values if v is not None]
        if present:
            low, mean, high = (
                fmt.format(x) for x in (min(present), sum(present) / len(present), max(present))
            )
        else:
            low = mean = high = "-"
        lines.append(f"  {label:24}{low:>9}{mean:>9}{high:>9}   {sparkline(values)}")
    return "\n".join(lines)


async def _pilot(db: Database) -> User:
    found = await users.get_user_by_email(db, EMAIL)
    return found or await users.create_user(
        db, name="João Silva", email=EMAIL, role="pilot", licenses=["PP", "PC", "IFR"]
    )


async def _conversation(db: Database, pilot: User) -> Conversation:
    page = await conversations.list_conversations(db, pilot.user_id, limit=500)
    for conversation in page.items:
        if conversation.title == TITLE:
            return conversation
    return await conversations.create_conversation(db, user_id=pilot.user_id, title=TITLE)


async def _demo() -> None:
    async with await connect() as db:
        print(f"banco: {db.dialect} ({db.settings.database_url})")
        report = await seed(db)
        print(
            f'dados de exemplo: {report.admin.email}, painel "{report.dashboard.name}", '
            f"+{report.samples} amostras horárias"
        )

        pilot = await _pilot(db)
        print(
            f"\npiloto     {pilot.name} <{pilot.email}> · {pilot.role.value} · "
            f"licenças {', '.join(pilot.licenses)}"
        )
        remembered = await memory.store_memory(
            db,
            user_id=pilot.user_id,
            key="preferred_aircraft",
            value="Cessna 172",
            memory_type="long_term",
            importance_score=0.8,
        )
        print(
            f"memória    {remembered.key} = {_json(remembered.value)} "
            f"({remembered.memory_type.value}, importância {remembered.importance_score})"
        )
        chat = await _conversation(db, pilot)
        message = await conversations.add_message(
            db,
            conversation_id=chat.conversation_id,
            user_id=pilot.user_id,
            content="Qual o METAR de SBGR?",
            message_type="user_input",
            tokens_used=7,
        )
        chat = await conversations.get_conversation(db, chat.conversation_id) or chat
        print(
            f'conversa   "{chat.title}" · {chat.message_count} mensagem(ns) · '
            f"{chat.total_tokens} tokens"
        )
        print(f"mensagem   [{message.message_type.value}] {message.content}")
        for hit in await memory.search_memories(db, pilot.user_id, "cessna"):
            print(
                f'busca      "cessna" → {hit.entry.key} = {_json(hit.entry.value)} '
                f"(pontuação {hit.score:.2f})"
            )

        series = await metrics.dashboard_series(
            db, period="24h", dashboard_id=report.dashboard.dashboard_id
        )
        total = sum(b.samples for b in series)
        print(
            f"\n{report.dashboard.name} · últimas 24 h · {len(series)} intervalos de 1 h · "
            f"{total} amostras"
        )
        print(dashboard_table(series))


def main() -> int:
    try:
        applied = apply_migrations()
        print(f"migrações: {', '.join(applied) if applied else 'em dia'}")
        asyncio.run(_demo())
    except StratusError as exc:
        print(f"a demonstração falhou: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
