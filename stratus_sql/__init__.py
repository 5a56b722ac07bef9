"""stratus_sql: the typed async raw-SQL data layer of Stratus.IA.

db = await stratus_sql.connect()          # DATABASE_URL, or the embedded ./stratus.db
user = await users.create_user(db, name="João Silva", email="joao@example.com", role="pilot")
"""

from stratus_sql import errors, records
from stratus_sql.config import Settings
from stratus_sql.database import Database, connect
from stratus_sql.engine import Actor, Executor
from stratus_sql.errors import (
    AlreadyExists,
    CommitUnknown,
    ConfigError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PoolExhausted,
    QueryFileError,
    QueryTimeout,
    RollbackWouldLoseData,
    SamplesPruned,
    StratusError,
    UsageError,
)
from stratus_sql.migrations import apply_migrations, migration_status, rollback_migrations
from stratus_sql.observability import JsonFormatter, trace

__all__ = [
    "Actor",
    "AlreadyExists",
    "CommitUnknown",
    "ConfigError",
    "Conflict",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "Executor",
    "InvalidInput",
    "JsonFormatter",
    "NotFound",
    "PoolExhausted",
    "QueryFileError",
    "QueryTimeout",
    "RollbackWouldLoseData",
    "SamplesPruned",
    "Settings",
    "StratusError",
    "UsageError",
    "apply_migrations",
    "connect",
    "errors",
    "migration_status",
    "records",
    "rollback_migrations",
    "trace",
]
