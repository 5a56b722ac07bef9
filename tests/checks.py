"""Small typed helpers the test modules share."""

from __future__ import annotations

from typing import TypeVar

from stratus_sql.sqlfiles import NamedStatement, parse

T = TypeVar("T")


def present(value: T | None) -> T:
    """`value`, which the test expects to be there (a row it wrote, say): None fails the test."""
    assert value is not None, "expected a value, got None"
    return value


def adhoc(spec: str, **sql: str) -> NamedStatement:
    """A named statement made by a test, to run SQL of its own through an executor (inside a
    transaction: on that transaction's connection). `spec` is what follows `-- name:`, e.g.
    `actor_settings :one -> ActorSettings`; `sql` gives its SQL by dialect."""
    name = spec.split()[0]
    return NamedStatement(
        name,
        {dialect: parse(f"-- name: {spec}\n{text}", dialect)[0] for dialect, text in sql.items()},
    )
