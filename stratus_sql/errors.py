"""The errors stratus_sql raises. Driver exceptions never escape a query function.

```
StratusError
├── InvalidInput (ValueError)      arguments rejected before SQL ran; CHECK / NOT NULL violations
├── NotFound (LookupError)         a write named a missing row; FK violation
├── AlreadyExists                  unique violation; .constraint
├── Conflict                       serialization failure / deadlock / busy database
├── CommitUnknown                  a write was cut off after it was sent: outcome unknown
├── DatabaseUnavailable            cannot connect in time
│   └── PoolExhausted              no pooled connection freed up within DB_POOL_TIMEOUT
├── QueryTimeout                   a statement ran past DB_COMMAND_TIMEOUT
├── ConfigError (ValueError)       a setting (DATABASE_URL, DB_*) has an invalid value
├── QueryFileError                 a sql/ file cannot be parsed; message has file:line
├── UsageError                     the library was misused (unknown statement, kind mismatch)
└── DatabaseError                  any other error the server reported
```

Every error translated from a driver exception chains it (`raise ... from exc`), so the
original SQLSTATE or SQLite error code stays available in `__cause__`, and says whether it
is transient (`retryable`) and whether the statement may have reached the server before the
connection was lost (`in_flight`).
"""

from __future__ import annotations

from datetime import datetime

# Said by the DatabaseError of a statement that names a table the database does not have.
SCHEMA_MISSING = "the schema is missing or out of date: run stratus-sql migrate"

__all__ = [
    "AlreadyExists",
    "CommitUnknown",
    "ConfigError",
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "InvalidInput",
    "NotFound",
    "PoolExhausted",
    "QueryFileError",
    "QueryTimeout",
    "RollbackWouldLoseData",
    "SamplesPruned",
    "StratusError",
    "UsageError",
]


class StratusError(Exception):
    """Base of every error raised by stratus_sql.

    `sqlstate` is the server's SQLSTATE (None on SQLite, which has none) and `constraint` the
    constraint it names, when it does.
    `retryable`: the failure is transient (serialization failure, deadlock, lost or refused
    connection, busy SQLite file) and the same work may succeed if run again.
    `in_flight`: the statement was sent and then cut off (its connection was lost, or it ran
    past DB_COMMAND_TIMEOUT and was cancelled), so a write may or may not have been applied.
    """

    retryable: bool = False
    in_flight: bool = False
    sqlstate: str | None = None
    constraint: str | None = None

    def caused_by(self, sqlstate: str | None, constraint: str | None = None) -> StratusError:
        """Record the server's SQLSTATE (None where the database has none, as on SQLite) and
        the constraint it names; returns the error."""
        self.sqlstate = sqlstate
        if constraint is not None:
            self.constraint = constraint
        return self

    def transient(self, *, in_flight: bool = False) -> StratusError:
        """Mark this error retryable (and, with `in_flight`, possibly applied); returns it."""
        self.retryable = True
        self.in_flight = in_flight
        return self


class InvalidInput(StratusError, ValueError):
    """Arguments were rejected: by validation before any SQL ran, or by a CHECK constraint."""


class NotFound(StratusError, LookupError):
    """A write named a row that does not exist (including a foreign key to a missing row)."""


class AlreadyExists(StratusError):
    """A unique constraint was violated; `constraint` names it when the driver says."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class Conflict(StratusError):
    """A serialization failure, deadlock or lock timeout the caller may retry."""


class CommitUnknown(StratusError):
    """A write was cut off after it was sent (its connection was lost, or it or its COMMIT
    ran past DB_COMMAND_TIMEOUT): it may or may not have been applied. Never retried
    automatically; read back what the write would have changed."""


class DatabaseUnavailable(StratusError):
    """No connection to the database could be made in time."""


class PoolExhausted(DatabaseUnavailable):
    """Every pooled connection stayed busy for DB_POOL_TIMEOUT."""


class QueryTimeout(StratusError):
    """A statement ran longer than DB_COMMAND_TIMEOUT and was cancelled; its connection
    is usable again."""


class ConfigError(StratusError, ValueError):
    """A configuration value is invalid; the message names the variable."""


class QueryFileError(StratusError):
    """A named-SQL file cannot be parsed; the message starts with `file:line`."""


class UsageError(StratusError):
    """The library was called wrongly: unknown statement, wrong kind, missing parameter."""


class RollbackWouldLoseData(UsageError):
    """A rollback was refused because it would drop or empty tables holding rows; `tables`
    maps each such table to its row count. Pass `force=True` (`--force`) to roll back anyway."""

    def __init__(self, message: str, *, tables: dict[str, int]) -> None:
        super().__init__(message)
        self.tables = tables


class SamplesPruned(StratusError, LookupError):
    """An exact computation reached back before the raw samples kept (`stratus-sql metrics
    prune` dropped them); `pruned_before` is where they start. The rollups still answer."""

    def __init__(self, message: str, pruned_before: datetime) -> None:
        super().__init__(message)
        self.pruned_before = pruned_before


class DatabaseError(StratusError):
    """The database reported an error that has no more specific class above."""
