"""What the executor and the backends need of a named statement, once loaded.

`Statement` is one statement compiled for one dialect; `NamedStatement` gathers the same name
across dialects. `stratus_sql.sqlfiles` builds them from the `sql/` files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stratus_sql.errors import UsageError
from stratus_sql.sqlscan import compile_sql

__all__ = ["Kind", "NamedStatement", "Statement", "returning_columns", "with_nulls"]


class Kind(StrEnum):
    """What running a statement gives back (the sqlc vocabulary)."""

    ONE = ":one"
    MANY = ":many"
    SCALAR = ":scalar"
    EXEC = ":exec"
    EXECROWS = ":execrows"
    COPY = ":copy"


_LAST_NAME = re.compile(r'"?([A-Za-z_][A-Za-z0-9_]*)"?$')


@dataclass(frozen=True, slots=True)
class Statement:
    """One named statement in one dialect, with its parameters compiled."""

    name: str
    kind: Kind
    dialect: str
    doc: str
    sql: str
    text: str
    params: tuple[str, ...]
    record: str | None
    readonly: bool
    code: str = field(repr=False)
    where: str = ""
    copy_table: str | None = None
    copy_columns: tuple[str, ...] = ()
    copy_text: str = ""  # with `?` for each parameter, for sqlite3's executemany of tuples

    def positional(self, values: Mapping[str, Any]) -> list[Any]:
        """The arguments in `$n` order; every parameter must be given, and nothing else."""
        try:
            args = [values[p] for p in self.params]
        except KeyError:
            args = []
        if len(args) != len(self.params) or len(values) != len(args):
            self._check(values)
        return args

    def named(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as a mapping; every parameter must be given, and nothing else."""
        self._check(values)
        return dict(values)

    def _check(self, values: Mapping[str, Any]) -> None:
        if len(values) == len(self.params) and all(p in values for p in self.params):
            return
        missing = [p for p in self.params if p not in values]
        if missing:
            raise UsageError(f"statement {self.name!r} needs parameter {missing[0]!r}")
        extra = sorted(set(values) - set(self.params))
        raise UsageError(f"statement {self.name!r} has no parameter {extra[0]!r}")


@dataclass(frozen=True, slots=True)
class NamedStatement:
    """The same statement name in every dialect."""

    name: str
    by_dialect: Mapping[str, Statement]

    def for_dialect(self, dialect: str) -> Statement:
        return self.by_dialect[dialect]


def with_nulls(stmt: Statement) -> str:
    """The statement's SQL with a NULL literal for each parameter (to describe it unbound)."""
    return compile_sql(stmt.sql, "null")[0].strip().rstrip(";").rstrip()


def returning_columns(stmt: Statement) -> list[str] | None:
    """The output names of a top-level RETURNING list, or None when there is none."""
    code, depth, start = stmt.code, 0, -1
    for m in re.finditer(r"[()]|\bRETURNING\b", code, re.IGNORECASE):
        token = m.group(0)
        depth += 1 if token == "(" else -1 if token == ")" else 0
        if depth == 0 and token.upper() == "RETURNING":
            start = m.end()
    if start < 0:
        return None
    items, depth = [""], 0
    for ch in code[start:]:
        depth += 1 if ch == "(" else -1 if ch == ")" else 0
        if ch == "," and depth == 0:
            items.append("")
        else:
            items[-1] += ch
    names = []
    for item in items:
        found = _LAST_NAME.search(item.strip())
        names.append(found.group(1) if found else item.strip())
    return names
