"""Named SQL statements: parse `sql/<dialect>/<module>.sql` files, compile `:name` parameters.

A file holds statements introduced by a name line, then doc comment lines, then the SQL:

    -- name: get_user :one -> User
    -- One user by id.
    SELECT user_id, name FROM users WHERE user_id = :user_id;

Kinds follow sqlc: `:one` (a row or None), `:many` (rows), `:scalar` (the first value),
`:exec` (nothing), `:execrows` (affected row count) and `:copy` (a bulk load of many rows:
COPY on PostgreSQL, one executemany on SQLite; its SQL is a plain
`INSERT INTO t (a, b) VALUES (:a, :b)`). `:one` and
`:many` name the record they return after `->`, which is how `stratus-sql check` knows what
columns to expect.

A statement is taken for a read (`Statement.readonly`: it may go to a reader connection or a
replica, and be retried after its connection was lost) when it starts with SELECT, WITH or
VALUES and holds no DML keyword and none of the built-in functions that write (`nextval`,
`setval`, `pg_notify`). A statement calling a function of the schema that writes says so with
a last word `writes` on its name line:

    -- name: maintain :scalar writes

Parameters are compiled once, at load time, in the placeholder style of each dialect: to
`$1..$n` for asyncpg (`numbered`), left as `:name` for sqlite3 (`named`). The scanner
(`stratus_sql.sqlscan`) skips string literals ('..', E'..'), quoted identifiers, dollar-quoted
bodies, `--` and `/* */` comments and `::type` casts, so none of them is taken for a parameter.

Statements are loaded for every registered dialect (`stratus_sql.dialects`, whose `Dialect`,
`register_dialect`, `unregister_dialect` and `dialects` are re-exported here); postgres and
sqlite come registered. The dialects without a base define every statement, all of them the
same names. A dialect with a base holds only the statements that differ: its `<module>.sql`
(which may be missing) overrides some of the base's statements, which must exist and keep
their kind, record and parameters; every other statement is the base's SQL, compiled in the
dialect's own placeholder style.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from stratus_sql.dialects import (
    DIALECTS,
    Dialect,
    base_chain,
    dialects,
    generation,
    get_dialect,
    on_change,
    register_dialect,
    unregister_dialect,
)
from stratus_sql.errors import QueryFileError, UsageError
from stratus_sql.sqlscan import PlaceholderStyle
from stratus_sql.sqlscan import compile_sql as scan
from stratus_sql.statements import (
    Kind,
    NamedStatement,
    Statement,
    returning_columns,
    with_nulls,
)

__all__ = [
    "DIALECTS",
    "Dialect",
    "Kind",
    "NamedStatement",
    "Queries",
    "Statement",
    "compile_sql",
    "dialects",
    "load_queries",
    "parse",
    "query_modules",
    "register_dialect",
    "returning_columns",
    "unregister_dialect",
    "with_nulls",
]


def compile_sql(
    sql: str, dialect: str, filename: str = "<sql>", first_line: int = 1
) -> tuple[str, tuple[str, ...], str]:
    """`sqlscan.compile_sql` in the placeholder style of the registered `dialect` (or `null`,
    which puts a NULL literal in place of every parameter)."""
    style: PlaceholderStyle = "null" if dialect == "null" else get_dialect(dialect).placeholders
    return scan(sql, style, filename, first_line)


_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<rest>.*)$")
_NAME_SPEC = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s+(?P<kind>:[a-z]+)(?:\s*->\s*(?P<record>[A-Za-z_]\w*))?"
    r"(?:\s+(?P<writes>writes))?\s*$"
)
_WORD = re.compile(r"[A-Za-z_]+")
# A statement holding any of these words writes: the DML keywords, and the built-in
# functions that change something when a SELECT calls them. A statement taken for a read may
# be routed to a reader and retried after its connection was lost, so one that calls a
# function of the schema that writes says so on its name line (`writes`).
_WRITE_WORDS = {
    "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "COPY", "NEXTVAL", "SETVAL", "PG_NOTIFY",
}  # fmt: skip


class Queries:
    """The statements of one query module; `Queries.get_user` is the statement `get_user`.

    Each statement is a plain attribute (a query's lookup costs nothing). Query modules hold
    a Queries from their import on, maybe from before a dialect was registered: a change of
    the registry drops the attributes, and the next lookup loads the module again."""

    def __init__(self, module: str, statements: Mapping[str, NamedStatement]) -> None:
        self._module = module
        self._statements: dict[str, NamedStatement] = {}
        self._generation = -1
        self._use(dict(statements), generation())
        _live.add(self)

    def __getattr__(self, name: str) -> NamedStatement:
        if name.startswith("__"):
            raise AttributeError(name)
        found = self._current().get(name)
        if found is None:
            raise UsageError(f"sql/*/{self._module}.sql has no statement {name!r}")
        return found

    def __iter__(self) -> Any:
        return iter(self._current().values())

    def names(self) -> list[str]:
        return sorted(self._current())

    def _current(self) -> dict[str, NamedStatement]:
        if self._generation != generation():
            self._use(load_queries(self._module)._statements, generation())
        return self._statements

    def _use(self, statements: dict[str, NamedStatement], loaded_at: int) -> None:
        self._forget()
        self._statements, self._generation = statements, loaded_at
        taken = dir(type(self))
        self.__dict__.update({n: s for n, s in statements.items() if n not in taken})

    def _forget(self) -> None:
        for name in self._statements:
            self.__dict__.pop(name, None)


_live: weakref.WeakSet[Queries] = weakref.WeakSet()


def _forget_all() -> None:
    for queries in list(_live):
        queries._forget()


on_change(_forget_all)


def load_queries(module: str) -> Queries:
    """Load `<module>.sql` for every registered dialect.

    The dialects without a base must define the same statement names; a dialect with a base
    has its base's names, some of them overridden.
    """
    return _load_queries(module, generation())


@lru_cache(maxsize=64)  # keyed by the registry's generation: a change of dialects loads anew
def _load_queries(module: str, registry_generation: int) -> Queries:
    registered = dialects()
    parsed = {dialect: _load(module, dialect) for dialect in registered}
    roots = [d.name for d in registered.values() if d.base is None]
    names = set(parsed[roots[0]])
    for dialect in roots[1:]:
        if set(parsed[dialect]) != names:
            diff = sorted(names.symmetric_difference(parsed[dialect]))
            raise QueryFileError(f"{module}.sql: dialects disagree on statements {diff}")
        for name in names:
            first, other = parsed[roots[0]][name], parsed[dialect][name]
            if first.kind is Kind.COPY and first.params != other.params:
                # :copy rows are positional: every dialect must take them in one order.
                raise QueryFileError(f"{other.where}: {name} takes its parameters in another order")
    return Queries(
        module,
        {n: NamedStatement(n, {d: parsed[d][n] for d in parsed}) for n in sorted(names)},
    )


def _load(module: str, dialect: str) -> dict[str, Statement]:
    """`module`'s statements compiled for `dialect`: those of the first dialect without a base
    in its chain of bases, each replaced by the statement of a nearer dialect that overrides it.
    """
    *derived, root = base_chain(dialect)
    path = root.folder() / f"{module}.sql"
    if not path.is_file():
        raise QueryFileError(f"{path}:1: file missing for dialect {root.name!r}")
    statements = {s.name: s for s in parse(path.read_text("utf-8"), dialect, str(path))}
    for layer in reversed(derived):
        path = layer.folder() / f"{module}.sql"
        if path.is_file():
            for stmt in parse(path.read_text("utf-8"), dialect, str(path)):
                _check_override(stmt, statements.get(stmt.name), layer)
                statements[stmt.name] = stmt
    return statements


def _check_override(stmt: Statement, base: Statement | None, layer: Dialect) -> None:
    """An override replaces a statement of the base and is called the same way."""
    if base is None:
        raise QueryFileError(
            f"{stmt.where}: {stmt.name!r} overrides nothing: base dialect {layer.base!r} "
            "has no statement of that name"
        )
    if (stmt.kind, stmt.record, set(stmt.params)) != (base.kind, base.record, set(base.params)):
        raise QueryFileError(
            f"{stmt.where}: {stmt.name!r} must keep the kind, record and parameters "
            f"of the statement it overrides ({base.where})"
        )
    if stmt.kind is Kind.COPY and stmt.params != base.params:
        raise QueryFileError(f"{stmt.where}: {stmt.name} takes its parameters in another order")


def parse(source: str, dialect: str, filename: str = "<sql>") -> list[Statement]:
    """Parse a named-SQL file into statements compiled for `dialect`."""
    placeholders = get_dialect(dialect).placeholders
    blocks: list[tuple[int, str, list[str]]] = []
    for lineno, line in enumerate(source.splitlines(), start=1):
        m = _NAME_LINE.match(line.strip())
        if m:
            blocks.append((lineno, m.group("rest"), []))
        elif blocks:
            blocks[-1][2].append(line)
        elif line.strip() and not line.strip().startswith("--"):
            raise QueryFileError(f"{filename}:{lineno}: SQL before the first '-- name:' line")
    seen: dict[str, int] = {}
    statements = []
    for lineno, spec, body in blocks:
        where = f"{filename}:{lineno}"
        stmt = _statement(spec, body, dialect, placeholders, filename, lineno)
        if stmt.name in seen:
            raise QueryFileError(
                f"{where}: statement {stmt.name!r} defined twice (first at line {seen[stmt.name]})"
            )
        seen[stmt.name] = lineno
        statements.append(stmt)
    return statements


def _statement(
    spec: str,
    body: list[str],
    dialect: str,
    placeholders: PlaceholderStyle,
    filename: str,
    lineno: int,
) -> Statement:
    where = f"{filename}:{lineno}"
    m = _NAME_SPEC.match(spec.strip())
    if not m:
        raise QueryFileError(f"{where}: expected '-- name: <name> <kind> [-> Record] [writes]'")
    name, kind_text, record = m.group("name"), m.group("kind"), m.group("record")
    try:
        kind = Kind(kind_text)
    except ValueError:
        kinds = ", ".join(k.value for k in Kind)
        raise QueryFileError(f"{where}: unknown kind {kind_text!r} (one of {kinds})") from None
    if kind in (Kind.ONE, Kind.MANY) and record is None:
        raise QueryFileError(f"{where}: {kind} statement {name!r} must name its record (-> X)")
    if kind not in (Kind.ONE, Kind.MANY) and record is not None:
        raise QueryFileError(f"{where}: {kind} statement {name!r} returns no record")
    doc_lines: list[str] = []
    i = 0
    while i < len(body) and body[i].strip().startswith("--"):
        doc_lines.append(body[i].strip()[2:].strip())
        i += 1
    while i < len(body) and not body[i].strip():
        i += 1
    sql = "\n".join(body[i:]).strip()
    text, params, code = scan(sql, placeholders, filename, lineno + 1 + i)
    code = code.strip().rstrip(";").rstrip()
    if not code:
        raise QueryFileError(f"{where}: statement {name!r} has no SQL")
    if ";" in code:
        raise QueryFileError(f"{where}: statement {name!r} holds more than one statement")
    words = [w.upper() for w in _WORD.findall(code)]
    readonly = (
        m.group("writes") is None
        and words[0] in ("SELECT", "VALUES", "WITH")
        and not _WRITE_WORDS.intersection(words)
    )
    copy_table, copy_columns = _copy_target(sql, params, kind, name, where)
    return Statement(
        copy_table=copy_table,
        copy_columns=copy_columns,
        copy_text=scan(sql, "qmark")[0].strip().rstrip(";").rstrip() if copy_table else "",
        name=name,
        kind=kind,
        dialect=dialect,
        doc="\n".join(doc_lines),
        sql=sql,
        text=text.strip().rstrip(";").rstrip(),
        params=params,
        record=record,
        readonly=readonly,
        code=code,
        where=where,
    )


_COPY_FORM = re.compile(
    r"^\s*INSERT\s+INTO\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)\s*VALUES\s*\(([^()]*)\)\s*;?\s*$",
    re.IGNORECASE,
)


def _copy_target(
    sql: str, params: tuple[str, ...], kind: Kind, name: str, where: str
) -> tuple[str | None, tuple[str, ...]]:
    """For `:copy`, the table and the columns its parameters fill, in parameter order."""
    if kind is not Kind.COPY:
        return None, ()
    form = _COPY_FORM.match(sql)
    values = [] if form is None else [v.strip() for v in form.group(3).split(",")]
    columns = [] if form is None else [c.strip().strip('"') for c in form.group(2).split(",")]
    if form is None or len(columns) != len(values) or [v[1:] for v in values] != list(params):
        raise QueryFileError(
            f"{where}: :copy statement {name!r} must be INSERT INTO t (a, b) VALUES (:a, :b), "
            "with one distinct parameter per column"
        )
    return form.group(1), tuple(columns)


def query_modules() -> list[str]:
    """The names of every named-SQL file (`users`, ...), as found for the first dialect."""
    return sorted(p.stem for p in get_dialect(DIALECTS[0]).folder().glob("*.sql"))
