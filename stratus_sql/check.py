"""`stratus-sql check`: prepare every named statement against a migrated database.

A statement fails the check when the database cannot prepare it, or when a `:one`/`:many`
statement's result columns are not exactly its record's fields, in order (rows are turned
into records by position, so the order matters).
"""

from __future__ import annotations

import stratus_sql.records as records
from stratus_sql.database import connect
from stratus_sql.errors import StratusError
from stratus_sql.sqlfiles import Kind, load_queries, query_modules

__all__ = ["check_statements"]


async def check_statements(url: str | None = None) -> tuple[int, list[str]]:
    """(statements checked, problems found) for the database at `url`."""
    problems: list[str] = []
    checked = 0
    async with await connect(url) as db:
        for module in query_modules():
            for named in load_queries(module):
                stmt = named.for_dialect(db.dialect)
                checked += 1
                try:
                    columns = await db.describe(named)
                except StratusError as exc:
                    problems.append(f"{stmt.where}: {stmt.name} does not prepare: {exc}")
                    continue
                if stmt.kind not in (Kind.ONE, Kind.MANY):
                    continue
                record = getattr(records, stmt.record or "", None)
                if record is None:
                    problems.append(f"{stmt.where}: {stmt.name} names unknown record {stmt.record}")
                    continue
                fields = list(record.model_fields)
                if columns != fields:
                    problems.append(
                        f"{stmt.where}: {stmt.name} returns columns {columns}, "
                        f"but {stmt.record} has fields {fields}"
                    )
    return checked, problems
