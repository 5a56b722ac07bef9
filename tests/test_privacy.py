"""LGPD rights on both backends: export everything about a person, erase them for good."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

import stratus_sql
from stratus_sql import Actor, Database, NotFound, UsageError
from stratus_sql.cli import main
from stratus_sql.queries import api_keys, audit, conversations, dashboards, memory, metrics, users
from stratus_sql.records import Conversation, User
from tests.checks import present


@pytest.fixture
async def fresh(blank_url: str) -> AsyncIterator[tuple[Database, str]]:
    stratus_sql.apply_migrations(blank_url)
    async with await stratus_sql.connect(blank_url) as db:
        yield db, blank_url


async def person(db: Database, tag: str) -> tuple[User, dict[str, str]]:
    """A user with something in every table; returns the identifying strings used."""
    secrets = {
        "name": f"Maria Aparecida {tag}",
        "email": f"maria.{tag}@exemplo.com.br",
        "licence": f"PX{tag.upper()}",
        "preference": f"prefere-{tag}",
        "title": f"Voo para Fernando de Noronha {tag}",
        "message": f"Minha rota secreta {tag}",
        "memory": f"Cessna de matrícula PT-{tag}",
        "memory_key": f"aeronave_{tag}",
        "dashboard": f"Painel de {tag}",
        "ip": f"203.0.113.{sum(map(ord, tag)) % 250 + 1}",
        "agent": f"navegador-{tag}",
    }
    actor = Actor(ip_address=secrets["ip"], user_agent=secrets["agent"])
    async with db.transaction(actor=actor) as tx:
        user = await users.create_user(
            tx, name=secrets["name"], email=secrets["email"], role="pilot",
            licenses=[secrets["licence"]], preferences={"nota": secrets["preference"]},
        )  # fmt: skip
    own = Actor(user_id=user.user_id, ip_address=secrets["ip"], user_agent=secrets["agent"])
    async with db.transaction(actor=own) as tx:
        chat = await conversations.create_conversation(
            tx, user_id=user.user_id, title=secrets["title"]
        )
        for i in range(3):
            await conversations.add_message(
                tx, conversation_id=chat.conversation_id, user_id=user.user_id,
                content=f"{secrets['message']} {i}", message_type="user_input",
            )  # fmt: skip
        await conversations.compact_conversation(
            tx, chat.conversation_id, keep_last=1, summary=secrets["message"]
        )
        await memory.store_memory(
            tx, user_id=user.user_id, key=secrets["memory_key"], value=secrets["memory"],
            memory_type="long_term", importance_score=0.7,
        )  # fmt: skip
        await memory.store_memory(
            tx, user_id=user.user_id, key="expirada", value=secrets["memory"],
            memory_type="short_term", importance_score=0.1,
            expires_at=datetime.now(UTC) - timedelta(hours=1),
        )  # fmt: skip
        board = await dashboards.create_dashboard(
            tx, user_id=user.user_id, name=secrets["dashboard"]
        )
        await metrics.record_metrics(
            tx,
            [{"user_id": user.user_id, "dashboard_id": board.dashboard_id, "ia_efficiency": 0.9,
              "model_accuracy": 0.9, "processing_time_ms": 100.0, "memory_usage_mb": 300.0,
              "error_rate": 0.0, "periodo": "1h"}],
        )  # fmt: skip
        key = await api_keys.create_api_key(tx, user_id=user.user_id)
    secrets["api_key"] = key.key
    return user, secrets


async def test_export_holds_everything_stored_and_is_audited(db: Database) -> None:
    user, secrets = await person(db, uuid.uuid4().hex[:8])
    data = await users.export_user_data(db, user.user_id)
    orjson.dumps(data)  # JSON-ready
    assert data["user"]["email"] == secrets["email"]
    (chat,) = data["conversations"]
    assert chat["title"] == secrets["title"]
    assert [m["content"][-1] for m in chat["messages"]] == ["2"]
    assert [m["content"][-1] for m in chat["archived_messages"]] == ["0", "1"]
    assert {m["key"] for m in data["memories"]} == {secrets["memory_key"], "expirada"}
    assert [d["name"] for d in data["dashboards"]] == [secrets["dashboard"]]
    assert len(data["metrics"]) == 1
    (key,) = data["api_keys"]
    assert set(key) == {"key_id", "user_id", "created_at", "revoked_at"}  # never a hash
    assert key == (await api_keys.list_api_keys(db, user.user_id))[0].model_dump(mode="json")
    assert await api_keys.authenticate(db, secrets["api_key"]) == user
    assert {a["table_name"] for a in data["audit"]} >= {"users", "conversations", "memory_entries"}
    (event,) = await audit.list_audit(db, record_id=user.user_id, limit=1)
    assert (event.action, event.table_name) == ("EXPORT", "users")
    with pytest.raises(NotFound):
        await users.export_user_data(db, uuid.uuid4())


async def write_in(db: Database, chat: Conversation, author: User, content: str) -> None:
    """A message `author` writes in `chat`, someone else's conversation."""
    await conversations.add_message(
        db, conversation_id=chat.conversation_id, user_id=author.user_id,
        content=content, message_type="user_input",
    )  # fmt: skip


def every_row_as_text(url: str) -> list[str]:
    """Every row of every table (search shadow tables included), as text."""
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )]  # fmt: skip
            return [
                str(row) for t in tables for row in conn.execute(f'SELECT t::text FROM "{t}" AS t')
            ]
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = []
        for t in tables:
            for row in conn.execute(f'SELECT * FROM "{t}"'):
                out.append(
                    " ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row)
                )
        return out


async def test_erase_leaves_nothing_identifying_anywhere(fresh: tuple[Database, str]) -> None:
    db, url = fresh
    user, secrets = await person(db, "erasable")
    bystander, other = await person(db, "outro")
    assert other["ip"] != secrets["ip"]
    assert await audit.seal(db) > 0
    assert any(secrets["email"] in row for row in every_row_as_text(url))

    assert await users.erase_user(db, user.user_id) is True

    assert await api_keys.list_api_keys(db, user.user_id) == []
    assert await api_keys.authenticate(db, secrets["api_key"]) is None
    assert await api_keys.authenticate(db, other["api_key"]) == bystander
    (erase,) = [
        a for a in await audit.list_audit(db, record_id=user.user_id, limit=1000)
        if a.action == "ERASE"
    ]  # fmt: skip
    assert present(erase.new_values)["api_keys"] == 1
    rows = every_row_as_text(url)
    for label, value in secrets.items():
        leaks = [row for row in rows if value.lower() in row.lower()]
        assert not leaks, f"{label} ({value}) remains in: {leaks[:3]}"
    erased = await users.get_user(db, user.user_id)
    assert erased is not None
    assert (erased.name, erased.licenses, erased.preferences) == ("Usuário removido", [], {})
    assert (await users.export_user_data(db, bystander.user_id))["user"][
        "name"
    ] == "Maria Aparecida outro"
    assert (await audit.verify(db)).ok  # the redacted rows were resealed
    actions = [a.action for a in await audit.list_audit(db, record_id=user.user_id, limit=1000)]
    assert actions.count("ERASE") == 1


async def test_a_second_erase_is_a_no_op(fresh: tuple[Database, str]) -> None:
    db, _ = fresh
    user, _ = await person(db, "bis")
    assert await users.erase_user(db, user.user_id) is True
    before = await audit.list_audit(db, limit=1000)
    assert await users.erase_user(db, user.user_id) is False
    assert await audit.list_audit(db, limit=1000) == before
    with pytest.raises(NotFound):
        await users.erase_user(db, uuid.uuid4())


async def test_purge_deletes_old_conversations_in_batches_with_audit_rows(
    fresh: tuple[Database, str],
) -> None:
    db, _ = fresh
    user, _ = await person(db, "velho")
    chat = (await conversations.list_conversations(db, user.user_id)).items[0]
    assert await conversations.purge_conversations(db, older_than_days=30) == 0
    assert await conversations.purge_conversations(db, older_than_days=0, batch_size=1) == 1
    assert await conversations.get_conversation(db, chat.conversation_id) is None
    deleted = await audit.list_audit(db, record_id=chat.conversation_id, limit=1)
    assert deleted[0].action == "DELETE"
    with pytest.raises(stratus_sql.InvalidInput):
        await conversations.purge_conversations(db, older_than_days=-1)


def test_export_purge_and_audit_commands(
    blank_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    assert main(["--url", blank_url, "migrate"]) == 0

    async def make() -> User:
        async with await stratus_sql.connect(blank_url) as db:
            user, _ = await person(db, "cli")
            return user

    user = asyncio.run(make())
    out = tmp_path / "export.json"
    assert main(["--url", blank_url, "export-user", str(user.user_id), "--output", str(out)]) == 0
    assert orjson.loads(out.read_text())["user"]["email"] == "maria.cli@exemplo.com.br"
    assert main(["--url", blank_url, "export-user", str(uuid.uuid4())]) == 1
    assert "no user" in capsys.readouterr().err
    assert main(["--url", blank_url, "purge", "--conversations-older-than", "0"]) == 0
    assert (
        "deleted 1 conversation(s) older than 0 days, 1 expired memories" in capsys.readouterr().out
    )
    assert main(["--url", blank_url, "audit", "seal"]) == 0
    assert main(["--url", blank_url, "audit", "verify"]) == 0
    assert "audit chain intact" in capsys.readouterr().out


async def test_erase_reaches_changes_made_by_others_and_messages_in_others_chats(
    fresh: tuple[Database, str],
) -> None:
    db, url = fresh
    user, secrets = await person(db, "alcance")
    host, _ = await person(db, "anfitriao")
    host_chat = (await conversations.list_conversations(db, host.user_id)).items[0]
    # Changes with no actor (service calls), and by an administrator.
    admin = await users.create_user(
        db, name="Admin", email="admin.alcance@exemplo.com", role="admin"
    )
    await memory.store_memory(
        db, user_id=user.user_id, key=secrets["memory_key"], value="valor-alcance-novo",
        memory_type="long_term", importance_score=0.7,
    )  # fmt: skip
    chat = (await conversations.list_conversations(db, user.user_id)).items[0]
    async with db.transaction(actor=Actor(user_id=admin.user_id)) as tx:
        await conversations.compact_conversation(
            tx, chat.conversation_id, keep_last=0, summary="resumo-alcance-admin"
        )
    await write_in(db, host_chat, user, "mensagem-alcance-na-conversa-alheia")
    await audit.seal(db)

    assert await users.erase_user(db, user.user_id) is True

    rows = every_row_as_text(url)
    for value in (
        "valor-alcance-novo",
        "resumo-alcance-admin",
        "mensagem-alcance-na-conversa-alheia",
    ):
        assert not [row for row in rows if value in row], value
    assert (await audit.verify(db)).ok
    host_export = await users.export_user_data(db, host.user_id)
    assert all(
        m["user_id"] == str(host.user_id)
        for c in host_export["conversations"]
        for m in c["messages"] + c["archived_messages"]
    )


async def test_sqlite_search_index_keeps_no_erased_words(sqlite_url: str) -> None:
    async with await stratus_sql.connect(sqlite_url) as db:
        user, _ = await person(db, "indicezorb")
        assert await users.erase_user(db, user.user_id) is True
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        blobs = b"".join(
            row[0] for row in conn.execute("SELECT block FROM memory_entries_fts_data")
        )
    assert b"indicezorb" not in blobs


async def test_erasing_again_removes_what_was_written_since(fresh: tuple[Database, str]) -> None:
    db, _ = fresh
    user, _ = await person(db, "tardio")
    assert await users.erase_user(db, user.user_id) is True
    await memory.store_memory(
        db, user_id=user.user_id, key="tarde", value="chegou-depois", memory_type="critical",
        importance_score=1,
    )  # fmt: skip
    assert await users.erase_user(db, user.user_id) is True
    assert await memory.get_memory(db, user.user_id, "tarde") is None
    assert await users.erase_user(db, user.user_id) is False


async def test_an_erasure_does_not_launder_tampering_elsewhere(fresh: tuple[Database, str]) -> None:
    db, url = fresh
    first, _ = await person(db, "vitima")
    other, _ = await person(db, "apagado")
    await audit.seal(db)
    (target,) = [
        r
        for r in await audit.list_audit(db, record_id=first.user_id, limit=100)
        if r.action == "INSERT"
    ]
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(
                "UPDATE audit_log SET user_agent = 'forjado' WHERE audit_id = %s",
                (target.audit_id,),
            )
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as lite:
            lite.execute("DROP TRIGGER audit_log_no_update")
            lite.execute(
                "UPDATE audit_log SET user_agent = 'forjado' WHERE audit_id = ?", (target.audit_id,)
            )
    assert await users.erase_user(db, other.user_id) is True
    report = await audit.verify(db)
    assert (report.ok, report.audit_id) == (False, target.audit_id)


def message_ids(url: str) -> set[str]:
    """The ids of every message, live and archived, read behind the layer's back."""
    sql = "SELECT message_id FROM messages UNION ALL SELECT message_id FROM messages_archive"
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            return {str(r[0]) for r in conn.execute(sql)}
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return {str(r[0]) for r in conn.execute(sql)}


async def test_export_holds_exactly_the_messages_erasure_deletes(
    fresh: tuple[Database, str],
) -> None:
    db, url = fresh
    user, _ = await person(db, "exporta")
    host, _ = await person(db, "anfitria")
    host_chat = (await conversations.list_conversations(db, host.user_id)).items[0]
    await write_in(db, host_chat, user, "escrita-alheia-arquivada")
    await conversations.compact_conversation(
        db, host_chat.conversation_id, keep_last=0, summary="resumo"
    )
    await write_in(db, host_chat, user, "escrita-alheia-viva")

    data = await users.export_user_data(db, user.user_id)
    assert [m["content"] for m in data["messages_in_other_conversations"]] == [
        "escrita-alheia-viva"
    ]
    assert [m["content"] for m in data["archived_messages_in_other_conversations"]] == [
        "escrita-alheia-arquivada"
    ]
    exported = {
        m["message_id"]
        for group in (
            [m for c in data["conversations"] for m in c["messages"] + c["archived_messages"]],
            data["messages_in_other_conversations"],
            data["archived_messages_in_other_conversations"],
        )
        for m in group
    }
    before = message_ids(url)
    assert await users.erase_user(db, user.user_id) is True
    assert before - message_ids(url) == exported


async def test_on_sqlite_no_file_of_the_database_holds_erased_values(
    new_sqlite_database: Callable[[], str],
) -> None:
    url = new_sqlite_database()
    stratus_sql.apply_migrations(url)
    async with await stratus_sql.connect(url) as db:
        user, secrets = await person(db, "arquivo")
        await users.get_user(db, user.user_id)  # readers open too
        assert await users.erase_user(db, user.user_id) is True
        # Still open: nothing waits for a close or a later checkpoint.
        path = Path(url.removeprefix("sqlite:///"))
        files = [f for f in path.parent.iterdir() if f.name.startswith(path.name)]
        assert path in files
        for file in files:
            raw = file.read_bytes()
            for what, value in secrets.items():
                assert value.encode() not in raw, (file.name, what)


async def test_on_sqlite_erasure_inside_a_transaction_is_refused_and_undone(
    new_sqlite_database: Callable[[], str],
) -> None:
    url = new_sqlite_database()
    stratus_sql.apply_migrations(url)
    async with await stratus_sql.connect(url) as db:
        user, _ = await person(db, "dentro")
        with pytest.raises(UsageError, match="outside a transaction"):
            async with db.transaction() as tx:
                await users.erase_user(tx, user.user_id)
        assert await users.get_user(db, user.user_id) == user
