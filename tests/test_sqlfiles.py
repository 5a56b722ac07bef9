"""The named-SQL loader: parsing and parameter compilation, no database needed."""

from __future__ import annotations

import re

import pytest

from stratus_sql.errors import QueryFileError, UsageError
from stratus_sql.sqlfiles import (
    DIALECTS,
    Kind,
    compile_sql,
    load_queries,
    parse,
    query_modules,
    returning_columns,
    with_nulls,
)


def pg(sql: str) -> tuple[str, tuple[str, ...]]:
    text, params, _ = compile_sql(sql, "postgres")
    return text, params


def one(source: str, dialect: str = "postgres"):
    (stmt,) = parse(source, dialect, "q.sql")
    return stmt


def test_casts_are_not_parameters() -> None:
    assert pg("SELECT :doc::jsonb, x::text[]") == ("SELECT $1::jsonb, x::text[]", ("doc",))


def test_string_literals_keep_colons() -> None:
    assert pg("SELECT '10:30', 'it''s :not' WHERE t > :t") == (
        "SELECT '10:30', 'it''s :not' WHERE t > $1",
        ("t",),
    )


def test_escape_strings_honour_backslashes() -> None:
    sql = r"SELECT E'a\' :no', e'\\' || :yes"
    assert pg(sql) == (r"SELECT E'a\' :no', e'\\' || $1", ("yes",))


def test_plain_string_ending_in_e_is_not_an_escape_string() -> None:
    # `name'...'` is not E'..': a backslash inside stays literal and ends nothing.
    assert pg(r"SELECT 'x\' , :p") == (r"SELECT 'x\' , $1", ("p",))


def test_dollar_quoted_bodies_are_left_alone() -> None:
    sql = "SELECT $$ :a $$, $body$ it's :b $body$, :c"
    assert pg(sql) == ("SELECT $$ :a $$, $body$ it's :b $body$, $1", ("c",))


def test_positional_dollar_parameters_are_not_dollar_quotes() -> None:
    assert pg("SELECT :a, $1") == ("SELECT $1, $1", ("a",))


def test_comments_are_left_alone() -> None:
    sql = "SELECT 1 -- :a\n/* :b /* nested :c */ :d */ + :e"
    assert pg(sql) == ("SELECT 1 -- :a\n/* :b /* nested :c */ :d */ + $1", ("e",))


def test_quoted_identifiers_are_left_alone() -> None:
    assert pg('SELECT ":x" FROM t WHERE "timestamp" > :since') == (
        'SELECT ":x" FROM t WHERE "timestamp" > $1',
        ("since",),
    )


def test_parameter_used_twice_gets_one_number() -> None:
    assert pg("SELECT :a, :b, :a") == ("SELECT $1, $2, $1", ("a", "b"))


def test_array_slices_are_not_parameters() -> None:
    assert pg("SELECT arr[lo:hi], :p") == ("SELECT arr[lo:hi], $1", ("p",))
    assert pg("SELECT arr[(i):j], arr[:hi], arr[lo :hi], :p") == (
        "SELECT arr[(i):j], arr[:hi], arr[lo :hi], $1",
        ("p",),
    )


def test_non_ascii_parameter_names_are_an_error() -> None:
    with pytest.raises(QueryFileError, match=r"q\.sql:2: parameter names are ASCII"):
        parse("-- name: q :exec\nSELECT :ação;", "postgres", "q.sql")


def test_sqlite_keeps_named_parameters() -> None:
    text, params, _ = compile_sql("SELECT :a, ':b', :a", "sqlite")
    assert (text, params) == ("SELECT :a, ':b', :a", ("a",))


def test_null_dialect_replaces_every_parameter() -> None:
    stmt = one("-- name: q :many -> User\nSELECT a FROM t WHERE b = :b LIMIT :n;")
    assert with_nulls(stmt) == "SELECT a FROM t WHERE b = NULL LIMIT NULL"


def test_statement_parts() -> None:
    stmt = one(
        "-- header comment\n\n"
        "-- name: get_user :one -> User\n"
        "-- One user by id.\n"
        "-- Second doc line.\n"
        "SELECT user_id FROM users WHERE user_id = :user_id;\n"
    )
    assert stmt.name == "get_user"
    assert stmt.kind is Kind.ONE
    assert stmt.record == "User"
    assert stmt.doc == "One user by id.\nSecond doc line."
    assert stmt.text == "SELECT user_id FROM users WHERE user_id = $1"
    assert stmt.params == ("user_id",)
    assert stmt.readonly
    assert stmt.where == "q.sql:3"


def test_every_kind_parses() -> None:
    def body(kind: Kind) -> str:
        return "INSERT INTO t (a) VALUES (:a);" if kind is Kind.COPY else "SELECT 1;"

    source = "\n".join(
        f"-- name: s{i} {kind.value}{' -> R' if kind in (Kind.ONE, Kind.MANY) else ''}\n"
        + body(kind)
        for i, kind in enumerate(Kind)
    )
    assert [s.kind for s in parse(source, "sqlite")] == list(Kind)


def test_copy_statements_name_their_table_and_columns() -> None:
    stmt = one(
        '-- name: load :copy\nINSERT INTO metrics (metric_id, "timestamp") VALUES (:id, :at);'
    )
    assert (stmt.copy_table, stmt.copy_columns, stmt.params) == (
        "metrics",
        ("metric_id", "timestamp"),
        ("id", "at"),
    )
    for bad in (
        "INSERT INTO t (a, b) VALUES (:a, now());",
        "INSERT INTO t (a) VALUES (:a, :b);",
        "INSERT INTO t (a, b) VALUES (:a, :a);",
        "UPDATE t SET a = :a;",
    ):
        with pytest.raises(QueryFileError, match=":copy statement 'load' must be"):
            one(f"-- name: load :copy\n{bad}")


@pytest.mark.parametrize(
    ("sql", "readonly"),
    [
        ("SELECT 1", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("WITH x AS (DELETE FROM t RETURNING a) SELECT * FROM x", False),
        ("INSERT INTO t VALUES (1)", False),
        ("UPDATE t SET a = 'SELECT'", False),
        ("SELECT 'INSERT'", True),
    ],
)
def test_readonly_is_decided_by_keywords_outside_literals(sql: str, readonly: bool) -> None:
    kind = ":many -> R" if sql.startswith(("SELECT", "WITH")) else ":exec"
    assert one(f"-- name: q {kind}\n{sql};").readonly is readonly


def test_missing_parameter_names_statement_and_parameter() -> None:
    stmt = one("-- name: get_user :one -> User\nSELECT 1 WHERE :user_id = :other;")
    with pytest.raises(UsageError, match=r"'get_user' needs parameter 'other'"):
        stmt.positional({"user_id": 1})


def test_unknown_parameter_is_rejected() -> None:
    stmt = one("-- name: q :exec\nDELETE FROM t WHERE a = :a;", "sqlite")
    with pytest.raises(UsageError, match=r"'q' has no parameter 'b'"):
        stmt.named({"a": 1, "b": 2})


def test_positional_orders_by_first_appearance() -> None:
    stmt = one("-- name: q :exec\nUPDATE t SET a = :a WHERE b = :b OR c = :a;")
    assert stmt.positional({"b": 2, "a": 1}) == (1, 2)


def test_duplicate_name_is_an_error_at_load() -> None:
    source = "-- name: q :exec\nSELECT 1;\n\n-- name: q :exec\nSELECT 2;\n"
    with pytest.raises(QueryFileError, match=r"^q\.sql:4: statement 'q' defined twice"):
        parse(source, "sqlite", "q.sql")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("SELECT 1;\n-- name: q :exec\nSELECT 2;", r"q\.sql:1: SQL before"),
        ("-- name: q :all\nSELECT 1;", r"q\.sql:1: unknown kind ':all'"),
        ("-- name: q :one\nSELECT 1;", r"q\.sql:1: :one statement 'q' must name its record"),
        ("-- name: q :exec -> User\nSELECT 1;", r"q\.sql:1: :exec statement 'q' returns no"),
        ("-- name: 9q :exec\nSELECT 1;", r"q\.sql:1: expected"),
        ("-- name: q :exec\n-- only a comment\n", r"q\.sql:1: statement 'q' has no SQL"),
        ("-- name: q :exec\nSELECT 1; SELECT 2;", r"q\.sql:1: statement 'q' holds more"),
        ("-- name: q :exec\n-- doc\nSELECT\n 'abc;", r"q\.sql:4: unterminated ' quote"),
        ("-- name: q :exec\nSELECT $x$ body;", r"q\.sql:2: unterminated \$x\$ quote"),
        ("-- name: q :exec\nSELECT /* open;", r"q\.sql:2: unterminated /\* comment"),
    ],
)
def test_parse_errors_say_file_and_line(source: str, message: str) -> None:
    with pytest.raises(QueryFileError, match=message):
        parse(source, "postgres", "q.sql")


def test_returning_columns_reads_top_level_list() -> None:
    stmt = one(
        "-- name: q :one -> R\n"
        "INSERT INTO t (a) SELECT x FROM (SELECT 1 AS x RETURNING z) s\n"
        'RETURNING a, t.b, count(c, d) AS n, "timestamp";'
    )
    assert returning_columns(stmt) == ["a", "b", "n", "timestamp"]
    assert returning_columns(one("-- name: q :many -> R\nSELECT 1;")) is None


def test_unknown_statement_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no statement 'nope'"):
        _ = load_queries("users").nope


def test_both_dialects_define_the_same_statements_with_the_same_parameters() -> None:
    modules = query_modules()
    assert "users" in modules
    for module in modules:
        for named in load_queries(module):
            by_dialect = named.by_dialect
            assert set(by_dialect) == set(DIALECTS)
            signatures = {(s.kind, s.record, tuple(sorted(s.params))) for s in by_dialect.values()}
            assert len(signatures) == 1, f"{module}.{named.name} differs: {signatures}"


def test_every_statement_has_a_one_line_doc_and_explicit_columns() -> None:
    for module in query_modules():
        for named in load_queries(module):
            for stmt in named.by_dialect.values():
                assert stmt.doc, f"{stmt.where}: {stmt.name} has no doc comment"
                assert not re.search(r"(SELECT|RETURNING)\s+\*", stmt.code, re.IGNORECASE), (
                    f"{stmt.where}: {stmt.name} uses *"
                )


def test_a_select_calling_a_writing_function_is_not_taken_for_a_read() -> None:
    audit = load_queries("audit")
    for name in ("add_audit_partitions", "drop_audit_partitions"):
        assert not getattr(audit, name).for_dialect("postgres").readonly
    assert load_queries("users").get_user.for_dialect("postgres").readonly
