"""sqlite3 errors as stratus_sql errors, keyed by SQLite's extended result codes.

SQLite has no SQLSTATE, so `sqlstate` stays None; unique violations name the unique index,
as PostgreSQL names the constraint, so `AlreadyExists.constraint` agrees on both.
"""

from __future__ import annotations

import sqlite3

import aiosqlite
import orjson

from stratus_sql.errors import (
    SCHEMA_MISSING,
    AlreadyExists,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    StratusError,
    UsageError,
)

__all__ = ["ERRORS", "translated", "unique_index_name"]

# What `translated` turns into ours: sqlite3's errors, an int beyond SQLite's 64-bit INTEGER,
# a value orjson cannot encode.
ERRORS = (sqlite3.Error, OverflowError, orjson.JSONEncodeError)


async def unique_index_name(conn: aiosqlite.Connection, failed: str | None) -> str | None:
    """The name of the unique index behind SQLite's "UNIQUE constraint failed: t.a, t.b".

    SQLite names the columns of a column index (and the index itself only for expression
    indexes: "index 'name'"); Postgres names the constraint. Unique constraints are declared
    as named unique indexes in the SQLite schema so both backends report the same name.
    """
    if not failed:
        return failed
    if failed.startswith("index '"):
        return failed[len("index '") : -1]
    table, _, _ = failed.partition(".")
    columns = [c.strip().partition(".")[2] for c in failed.split(",")]
    try:
        async with conn.execute(
            'SELECT name FROM pragma_index_list(?) WHERE "unique"', [table]
        ) as c:
            names = [row[0] for row in await c.fetchall()]
        for name in names:
            async with conn.execute(
                "SELECT name FROM pragma_index_info(?) ORDER BY seqno", [name]
            ) as c:
                if [row[0] for row in await c.fetchall()] == columns:
                    return str(name)
    except sqlite3.Error:
        pass  # the name SQLite gave is still the best answer
    return failed


def translated(exc: BaseException) -> StratusError:
    """The stratus_sql error for a sqlite3 error, an int beyond SQLite's 64-bit INTEGER or a
    value orjson cannot encode. SQLite has no SQLSTATE: `sqlstate` stays None."""
    if isinstance(exc, OverflowError):
        return InvalidInput(f"value out of range for SQLite: {exc}")
    if isinstance(exc, orjson.JSONEncodeError):
        return InvalidInput(f"value cannot be stored as JSON: {exc}")
    if isinstance(exc, sqlite3.Error):
        return _sqlite_error(exc)
    raise TypeError(f"not a driver error: {exc!r}")


def _sqlite_error(exc: sqlite3.Error) -> StratusError:
    code = getattr(exc, "sqlite_errorname", "") or ""
    message = str(exc)
    if code in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        constraint = message.split("failed: ", 1)[-1] if "failed: " in message else None
        return AlreadyExists(f"already exists: {message}", constraint=constraint)
    if code == "SQLITE_CONSTRAINT_TRIGGER":  # RAISE(ABORT, ...): a trigger's own refusal
        if message.startswith("FOREIGN KEY"):
            return NotFound(f"a referenced row does not exist ({message})")
        return DatabaseError(f"refused by the database: {message}")
    if code == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return NotFound("a referenced row does not exist (FOREIGN KEY)")
    if code.startswith("SQLITE_CONSTRAINT") or code in ("SQLITE_TOOBIG", "SQLITE_MISMATCH"):
        return InvalidInput(f"rejected by the database: {message}")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return Conflict(f"database busy: {message}").transient()
    if code.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_NOTADB", "SQLITE_FULL")):
        return DatabaseUnavailable(f"SQLite file unusable: {message}")
    if isinstance(exc, sqlite3.ProgrammingError):
        return UsageError(f"SQLite misuse: {message}")
    if message.startswith("no such table"):
        return DatabaseError(f"{message}: {SCHEMA_MISSING}")
    return DatabaseError(f"{message} ({code or type(exc).__name__})")
