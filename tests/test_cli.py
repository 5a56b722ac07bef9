"""The stratus-sql command: migrate, status, rollback and check, on both backends."""

from __future__ import annotations

import pytest

from stratus_sql.cli import main
from stratus_sql.sqlfiles import load_queries, query_modules


def statement_count() -> int:
    return sum(len(load_queries(m).names()) for m in query_modules())


def test_check_passes_on_the_migrated_databases(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", database_url, "check"]) == 0
    assert capsys.readouterr().out.strip() == f"{statement_count()} statements checked, 0 problems"


def test_check_names_every_statement_that_does_not_prepare(
    blank_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", blank_url, "check"]) == 1
    captured = capsys.readouterr()
    # Every statement that reads a table fails; the few that touch none (setting a
    # variable, taking a lock, SQLite's stand-ins for Postgres-only work) do not.
    problems = int(captured.out.split(", ")[1].split()[0])
    assert statement_count() // 2 < problems < statement_count()
    assert captured.err.count("does not prepare") == problems
    assert "users.sql:" in captured.err
    assert "get_user does not prepare" in captured.err


def test_migrate_status_rollback(blank_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = blank_url
    assert main(["--url", url, "status"]) == 0
    assert "pending  0001.initial_schema" in capsys.readouterr().out
    assert main(["--url", url, "migrate"]) == 0
    assert "applied 0001.initial_schema" in capsys.readouterr().out
    assert main(["--url", url, "migrate"]) == 0
    assert capsys.readouterr().out.strip() == "up to date"
    assert main(["--url", url, "status"]) == 0
    assert "applied  0001.initial_schema" in capsys.readouterr().out
    assert main(["--url", url, "rollback", "--all"]) == 0
    assert "rolled back 0001.initial_schema" in capsys.readouterr().out
    assert main(["--url", url, "rollback"]) == 0
    assert capsys.readouterr().out.strip() == "nothing to roll back"


def test_errors_print_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "postgresql://u:hunter2@127.0.0.1:1/db", "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stratus-sql status: cannot reach 127.0.0.1:1/db")
    assert "hunter2" not in err
    assert "Traceback" not in err
    assert main(["--url", "mysql://x/y", "migrate"]) == 1
    assert "DATABASE_URL must start with" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        *(("--port", v, "expected a port from 1 to 65535") for v in ("0", "65536", "http")),
        *(("--reuse-seconds", v, "expected seconds from 0 to 60") for v in ("-1", "61", "nan")),
        *(("--workers", v, "expected 1 to 64 workers") for v in ("0", "65", "two")),
    ],
)
def test_serve_refuses_options_that_cannot_be(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["serve", option, value])
    assert refused.value.code == 2
    assert message in capsys.readouterr().err
