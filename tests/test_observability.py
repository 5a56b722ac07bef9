"""Statement logs (JSON, no parameters), per-statement statistics, trace ids and health."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

import stratus_sql
from stratus_sql import Database, JsonFormatter, trace
from stratus_sql.cli import main
from stratus_sql.queries import users
from tests.checks import adhoc

# A log line as the JSON the formatter writes: nested objects of any JSON values.
LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Captures the stratus_sql logger's lines as the JSON the formatter writes."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("stratus_sql")
    log.addHandler(handler)
    before = log.level
    log.setLevel(logging.DEBUG)
    try:
        yield lambda: [orjson.loads(handler.format(r)) for r in records]
    finally:
        log.removeHandler(handler)
        log.setLevel(before)


async def test_every_statement_is_logged_as_json_without_its_parameters(
    db: Database, log_lines: LogLines
) -> None:
    secret = f"segredo.{uuid.uuid4().hex}@example.com"
    with trace("req-42"):
        user = await users.create_user(db, name="Ana", email=secret, role="pilot")
        await users.get_user(db, user.user_id)
    lines = log_lines()
    names = [line["metrics"]["statement"] for line in lines]
    assert names[-2:] == ["create_user", "get_user"]
    last = lines[-1]
    assert set(last) >= {
        "timestamp", "level", "log_type", "trace_id", "message", "module", "function", "line",
        "process_id", "thread_id", "metrics",
    }  # fmt: skip
    assert (last["level"], last["log_type"], last["trace_id"]) == ("DEBUG", "DATABASE", "req-42")
    assert last["metrics"]["backend"] == db.dialect
    assert last["metrics"]["rows"] == 1
    assert last["metrics"]["operation_duration_ms"] >= 0
    assert secret not in orjson.dumps(lines).decode()


async def test_slow_statements_are_warnings(database_url: str, log_lines: LogLines) -> None:
    settings = stratus_sql.Settings.load(slow_query_ms=0)
    async with await stratus_sql.connect(database_url, settings=settings) as db:
        await users.get_user(db, uuid.uuid4())
    (line,) = [x for x in log_lines() if x["metrics"]["statement"] == "get_user"]
    assert line["level"] == "WARNING"
    assert str(line["message"]).startswith("slow statement get_user")


async def test_stats_count_calls_errors_and_durations(db: Database) -> None:
    address = f"s.{uuid.uuid4().hex}@example.com"
    await users.create_user(db, name="Ana", email=address, role="pilot")
    with pytest.raises(stratus_sql.AlreadyExists):
        await users.create_user(db, name="Ana", email=address, role="pilot")
    for _ in range(3):
        await users.get_user(db, uuid.uuid4())
    stats = db.stats()
    assert (stats["create_user"].calls, stats["create_user"].errors) == (2, 1)
    assert stats["get_user"].calls == 3
    assert stats["get_user"].total_ms >= stats["get_user"].p95_ms > 0


async def test_health_reports_a_reachable_migrated_database(db: Database) -> None:
    health = await db.health()
    assert health.healthy
    assert health.reachable
    assert health.latency_ms is not None
    assert health.server_version
    assert health.pending_migrations == []
    assert health.pool_size >= 1


def test_health_command_exits_non_zero_when_unhealthy(
    blank_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", blank_url, "health"]) == 1  # nothing migrated yet
    report = orjson.loads(capsys.readouterr().out)
    assert report["reachable"] is True
    assert report["healthy"] is False
    assert "0001.initial_schema" in report["pending_migrations"]
    assert main(["--url", blank_url, "migrate"]) == 0
    capsys.readouterr()
    assert main(["--url", blank_url, "health"]) == 0
    assert orjson.loads(capsys.readouterr().out)["healthy"] is True


def test_trace_ids_are_checked() -> None:
    with pytest.raises(ValueError, match="trace_id"), trace("x" * 65):
        pass


# Run inside a transaction, so on its connection.
OWN_ACTIVITY = adhoc(
    "own_application_name :scalar",
    postgres="SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
)
APPLICATION_NAME = adhoc(
    "application_name :scalar", postgres="SELECT current_setting('application_name')"
)


async def test_a_traced_transaction_shows_its_trace_id_in_pg_stat_activity(
    pg_url: str,
) -> None:
    async with await stratus_sql.connect(pg_url) as db:
        with trace("req-77"):
            async with db.transaction() as tx:
                seen = await tx.fetch_scalar(OWN_ACTIVITY)
        assert seen == "stratus:req-77"
        async with db.transaction() as tx:
            assert await tx.fetch_scalar(APPLICATION_NAME) == ""
