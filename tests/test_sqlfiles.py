"""The named-SQL loader: parsing and parameter compilation, no database needed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from stratus_sql.errors import QueryFileError, UsageError
from stratus_sql.queries import users
from stratus_sql.sqlfiles import (
    DIALECTS,
    Dialect,
    Kind,
    Statement,
    compile_sql,
    dialects,
    load_queries,
    parse,
    query_modules,
    register_dialect,
    returning_columns,
    unregister_dialect,
    with_nulls,
)

TEST_DIALECTS = Path(__file__).parent / "sql_dialects"


def pg(sql: str) -> tuple[str, tuple[str, ...]]:
    text, params, _ = compile_sql(sql, "postgres")
    return text, params


def one(source: str, dialect: str = "postgres") -> Statement:
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
    assert stmt.positional({"b": 2, "a": 1}) == [1, 2]


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
        ("-- name: q :exec write\nSELECT 1;", r"q\.sql:1: expected .*\[writes\]'"),
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
            assert set(by_dialect) == set(dialects())
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
    for name in ("maintain", "prune"):
        assert not getattr(audit, name).for_dialect("postgres").readonly
    assert load_queries("users").get_user.for_dialect("postgres").readonly


def test_a_call_of_a_writing_function_is_a_write_only_when_its_name_line_says_so() -> None:
    sql = "SELECT audit_log_add_partitions(:months_ahead);"
    assert one(f"-- name: q :scalar\n{sql}").readonly
    marked = one(f"-- name: add_audit_partitions :scalar writes\n{sql}")
    assert (marked.name, marked.kind, marked.readonly) == (
        "add_audit_partitions",
        Kind.SCALAR,
        False,
    )
    many = one("-- name: q :many -> R writes\nSELECT a FROM f(:x);", "sqlite")
    assert (many.record, many.readonly) == ("R", False)


def test_every_statement_calling_a_writing_function_of_the_schema_is_marked() -> None:
    writing = re.compile(
        r"\b(audit_log_add_partitions|audit_log_drop_partitions|stratus_set)\s*\(", re.IGNORECASE
    )
    calls = [
        stmt
        for module in query_modules()
        for named in load_queries(module)
        for stmt in named.by_dialect.values()
        if writing.search(stmt.code)
    ]
    assert len(calls) == 4
    for stmt in calls:
        assert not stmt.readonly, f"{stmt.where}: {stmt.name} calls a writing function"


@pytest.fixture
def register() -> Iterator[Callable[[Dialect], None]]:
    """register_dialect, with every dialect it added removed again after the test."""
    added: list[str] = []

    def add(dialect: Dialect) -> None:
        register_dialect(dialect)
        added.append(dialect.name)

    yield add
    for name in reversed(added):
        if name in dialects():
            unregister_dialect(name)
    assert tuple(dialects()) == DIALECTS


def same_sql(derived: Statement, base: Statement) -> bool:
    """The statement is the base's, in another dialect."""
    return replace(derived, dialect=base.dialect) == base


def test_shipped_dialects_are_registered_with_their_placeholders() -> None:
    assert [(d.name, d.placeholders, d.base) for d in dialects().values()] == [
        ("postgres", "numbered", None),
        ("sqlite", "named", None),
    ]


def test_a_derived_dialect_overrides_one_statement_and_inherits_the_rest(
    register: Callable[[Dialect], None],
) -> None:
    register(Dialect("tinypg", "numbered", base="postgres", root=TEST_DIALECTS))
    queries = load_queries("users")
    get_user = queries.get_user.for_dialect("tinypg")
    assert get_user.where == f"{TEST_DIALECTS / 'tinypg' / 'users.sql'}:3"
    assert get_user.text.endswith("WHERE user_id = $1\nLIMIT 1")
    assert (get_user.kind, get_user.record, get_user.params) == (Kind.ONE, "User", ("user_id",))
    for named in queries:
        if named.name != "get_user":
            assert same_sql(named.for_dialect("tinypg"), named.for_dialect("postgres"))
    for module in query_modules():
        if module != "users":
            for named in load_queries(module):
                assert same_sql(named.for_dialect("tinypg"), named.for_dialect("postgres"))


def test_inherited_statements_take_the_placeholders_of_the_derived_dialect(
    register: Callable[[Dialect], None],
) -> None:
    register(Dialect("namedpg", "named", base="postgres", root=TEST_DIALECTS))
    pg, named = (load_queries("users").get_user.for_dialect(d) for d in ("postgres", "namedpg"))
    assert named.sql == pg.sql
    assert named.text == pg.text.replace("$1", ":user_id")


def test_a_dialect_inherits_the_overrides_of_its_base(
    register: Callable[[Dialect], None],
) -> None:
    register(Dialect("tinypg", "numbered", base="postgres", root=TEST_DIALECTS))
    register(Dialect("tinierpg", "numbered", base="tinypg", root=TEST_DIALECTS))
    get_user = load_queries("users").get_user
    assert same_sql(get_user.for_dialect("tinierpg"), get_user.for_dialect("tinypg"))


def test_statements_loaded_before_a_registration_see_the_new_dialect(
    register: Callable[[Dialect], None],
) -> None:
    assert "tinypg" not in users.STATEMENTS.get_user.by_dialect
    register(Dialect("tinypg", "numbered", base="postgres", root=TEST_DIALECTS))
    assert users.STATEMENTS.get_user.for_dialect("tinypg").text.endswith("LIMIT 1")
    unregister_dialect("tinypg")
    assert "tinypg" not in users.STATEMENTS.get_user.by_dialect
    assert "tinypg" not in load_queries("users").get_user.by_dialect
    register(Dialect("tinypg", "named", base="postgres", root=TEST_DIALECTS))
    assert users.STATEMENTS.get_user.for_dialect("tinypg").text.endswith(":user_id\nLIMIT 1")


def write(root: Path, dialect: str, module: str, source: str) -> None:
    (root / dialect).mkdir(exist_ok=True)
    (root / dialect / f"{module}.sql").write_text(source, "utf-8")


def test_an_override_of_an_unknown_statement_is_refused_with_file_and_line(
    register: Callable[[Dialect], None], tmp_path: Path
) -> None:
    write(tmp_path, "oddpg", "users", "-- header\n\n-- name: get_usr :scalar\n-- Typo.\nSELECT 1;")
    register(Dialect("oddpg", "numbered", base="postgres", root=tmp_path))
    path = re.escape(str(tmp_path / "oddpg" / "users.sql"))
    with pytest.raises(QueryFileError, match=rf"^{path}:3: 'get_usr' overrides nothing"):
        load_queries("users")


@pytest.mark.parametrize(
    "name_line",
    [
        "-- name: get_user :many -> User",
        "-- name: get_user :one -> Conversation",
    ],
)
def test_an_override_keeps_the_kind_and_record_of_its_base(
    register: Callable[[Dialect], None], tmp_path: Path, name_line: str
) -> None:
    write(tmp_path, "oddpg", "users", f"{name_line}\n-- Doc.\nSELECT 1 WHERE :user_id;")
    register(Dialect("oddpg", "numbered", base="postgres", root=tmp_path))
    with pytest.raises(QueryFileError, match=r"users\.sql:1: 'get_user' must keep the kind"):
        load_queries("users")


def test_an_override_takes_the_parameters_of_its_base(
    register: Callable[[Dialect], None], tmp_path: Path
) -> None:
    write(tmp_path, "oddpg", "users", "-- name: get_user :one -> User\n-- Doc.\nSELECT :id;")
    register(Dialect("oddpg", "numbered", base="postgres", root=tmp_path))
    with pytest.raises(QueryFileError, match=r"users\.sql:1: 'get_user' must keep the kind"):
        load_queries("users")


def test_a_copy_override_takes_its_parameters_in_the_base_order(
    register: Callable[[Dialect], None], tmp_path: Path
) -> None:
    (pg,) = (s for s in load_queries("metrics") if s.for_dialect("postgres").kind is Kind.COPY)
    base = pg.for_dialect("postgres")
    columns, params = ", ".join(reversed(base.copy_columns)), reversed(base.params)
    values = ", ".join(f":{p}" for p in params)
    insert = f"INSERT INTO {base.copy_table} ({columns}) VALUES ({values});"
    write(tmp_path, "oddpg", "metrics", f"-- name: {pg.name} :copy\n-- Doc.\n{insert}")
    register(Dialect("oddpg", "numbered", base="postgres", root=tmp_path))
    with pytest.raises(QueryFileError, match=rf"metrics\.sql:1: {pg.name} takes its parameters"):
        load_queries("metrics")


def test_a_file_for_a_module_the_base_lacks_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "oddpg", "userz", "-- name: get_user :one -> User\nSELECT 1;")
    with pytest.raises(QueryFileError, match=r"userz\.sql:1: dialect 'postgres' has no userz\.sql"):
        register_dialect(Dialect("oddpg", "numbered", base="postgres", root=tmp_path))
    assert "oddpg" not in dialects()


def test_an_unregistered_base_is_refused() -> None:
    with pytest.raises(UsageError, match="dialect 'tinypg' names base 'mysql', not registered"):
        register_dialect(Dialect("tinypg", "numbered", base="mysql", root=TEST_DIALECTS))
    assert "tinypg" not in dialects()


def test_a_dialect_cannot_be_its_own_base() -> None:
    with pytest.raises(UsageError, match="bases form a cycle through 'loop'"):
        register_dialect(Dialect("loop", "numbered", base="loop"))
    assert "loop" not in dialects()


def test_a_registered_name_is_not_taken_again(register: Callable[[Dialect], None]) -> None:
    register(Dialect("tinypg", "numbered", base="postgres", root=TEST_DIALECTS))
    register_dialect(Dialect("tinypg", "numbered", base="postgres", root=TEST_DIALECTS))
    for other in (Dialect("tinypg", "named", base="postgres"), Dialect("sqlite", "numbered")):
        with pytest.raises(UsageError, match="is already registered"):
            register_dialect(other)


def test_shipped_dialects_and_bases_in_use_stay_registered(
    register: Callable[[Dialect], None],
) -> None:
    register(Dialect("tinypg", "numbered", base="postgres", root=TEST_DIALECTS))
    register(Dialect("tinierpg", "numbered", base="tinypg", root=TEST_DIALECTS))
    with pytest.raises(UsageError, match=r"'tinypg' is the base of \['tinierpg'\]"):
        unregister_dialect("tinypg")
    with pytest.raises(UsageError, match="shipped"):
        unregister_dialect("postgres")
    with pytest.raises(UsageError, match="unknown dialect 'mysql'"):
        unregister_dialect("mysql")


def test_a_dialect_without_a_base_must_define_every_module(
    register: Callable[[Dialect], None], tmp_path: Path
) -> None:
    register(Dialect("bare", "named", root=tmp_path))
    with pytest.raises(QueryFileError, match=r"bare/users\.sql:1: file missing for dialect 'bare'"):
        load_queries("users")
