"""Schema migrations: yoyo over the shipped `migrations/<dialect>/` folder.

yoyo keeps its default bookkeeping tables (`_yoyo_migration`, `_yoyo_log`, ...) and takes its
own lock, so two processes migrating at once apply each migration once. Postgres is reached
through psycopg 3 (`postgresql+psycopg://`), SQLite through the standard library.

A released migration is never edited: the SHA-256 of each applied migration's files is
kept in `_stratus_migration_checksums`, and `apply_migrations` and `migration_status` fail,
naming the file, when an applied migration's files have changed since.

A rollback never destroys rows unasked: the rollback files chosen are read for the tables
they drop or empty (`DROP TABLE`, `TRUNCATE`, `DELETE FROM`), and when any of those tables
exists and holds rows the rollback is refused with `RollbackWouldLoseData`, naming them and
their row counts, unless called with `force=True`. `migration_status` reports the same tables
for every applied migration.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stratus_sql._resources import data_dir
from stratus_sql.config import Settings, backend_of
from stratus_sql.errors import (
    ConfigError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    RollbackWouldLoseData,
    StratusError,
    UsageError,
)

__all__ = [
    "MigrationStatus",
    "apply_migrations",
    "migration_status",
    "pending_migrations",
    "rollback_migrations",
]


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """A known migration, whether it is applied, and, when it is, the tables holding rows
    that rolling it back would drop or empty, with their row counts as they stand now."""

    id: str
    applied: bool
    rollback_loses: dict[str, int] = field(default_factory=dict)


def apply_migrations(url: str | None = None) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date).

    UsageError, naming the file, if a migration already applied was edited since."""
    backend, migrations = _open(url)
    with _translated(url), backend.lock():
        _check_unchanged(backend, migrations)
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
        _record(backend, pending)
    return [m.id for m in pending]


def rollback_migrations(
    url: str | None = None, *, steps: int | None = 1, force: bool = False
) -> list[str]:
    """Roll back the newest `steps` applied migrations (all with `steps=None`); returns ids.

    RollbackWouldLoseData, naming the tables and their row counts, when the rollbacks would
    drop or empty tables holding rows, unless `force=True`; nothing is rolled back then."""
    if steps is not None and steps < 1:
        raise UsageError(f"steps must be at least 1 (got {steps})")
    backend, migrations = _open(url)
    with _translated(url), backend.lock():
        applied = backend.to_rollback(migrations)
        chosen = applied if steps is None else applied[:steps]
        lost = {} if force else _rows_lost(backend, chosen)
        if lost:
            counts = ", ".join(f"{table} ({rows} rows)" for table, rows in lost.items())
            raise RollbackWouldLoseData(
                f"rolling back {', '.join(m.id for m in chosen)} would drop or empty tables "
                f"holding rows: {counts}; back them up, then pass force=True "
                "(stratus-sql rollback --force) to roll back anyway",
                tables=lost,
            )
        backend.rollback_migrations(chosen)
        _forget(backend, chosen)
    return [m.id for m in chosen]


def migration_status(url: str | None = None) -> list[MigrationStatus]:
    """Every known migration, oldest first, and whether it is applied."""
    backend, migrations = _open(url)
    with _translated(url), backend.lock():
        _check_unchanged(backend, migrations)
        applied = backend.get_applied_migration_hashes()
        return [
            MigrationStatus(m.id, True, _rows_lost(backend, [m]))
            if m.hash in applied
            else MigrationStatus(m.id, False)
            for m in migrations
        ]


def pending_migrations(url: str | None = None) -> list[str]:
    """The ids of the migrations not applied yet, without taking the migration lock."""
    backend, migrations = _open(url)
    with _translated(url):
        applied = set(backend.get_applied_migration_hashes())
    return [m.id for m in migrations if m.hash not in applied]


_CHECKSUMS = "_stratus_migration_checksums"

# Statements that drop or empty a table, and the table names they take.
_LOSES_ROWS = re.compile(
    r"\b(?:DROP\s+TABLE(?:\s+IF\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?(?:\s+ONLY)?"
    r"|DELETE\s+FROM(?:\s+ONLY)?)\s+([\w\".]+(?:\s*,\s*[\w\".]+)*)",
    re.IGNORECASE,
)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)

# Tables whose rows are computed from other tables (SQLite's memory search index): dropping
# them loses nothing, as applying their migration again rebuilds them.
_DERIVED = frozenset({"memory_entries_fts", "memory_search_ids"})


def _rows_lost(backend: Any, migrations: Any) -> dict[str, int]:
    """The tables holding rows that these migrations' rollback files drop or empty, with
    their row counts. Only tables that exist now count: a table a rollback renames and then
    drops (Postgres 0007 copies the audit trail out of it first) is not at risk."""
    named: list[str] = []
    for migration in migrations:
        path = Path(migration.path)
        rollback = path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")
        if not rollback.is_file():
            continue
        sql = _COMMENT.sub("", rollback.read_text(encoding="utf-8"))
        for match in _LOSES_ROWS.finditer(sql):
            for name in match.group(1).split(","):
                table = name.strip().replace('"', "").rsplit(".", 1)[-1]
                if table not in named and table not in _DERIVED:
                    named.append(table)
    existing = set(backend.list_tables())
    counts = {
        table: int(backend.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
        for table in named
        if table in existing
    }
    return {table: rows for table, rows in counts.items() if rows}


def _checksum(migration: Any) -> str:
    """SHA-256 of a migration's file and its rollback file."""
    path = Path(migration.path)
    digest = hashlib.sha256(path.read_bytes())
    rollback = path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")
    if rollback.is_file():
        digest.update(rollback.read_bytes())
    return digest.hexdigest()


def _stored(backend: Any) -> dict[str, str]:
    with backend.transaction():
        backend.execute(
            f"CREATE TABLE IF NOT EXISTS {_CHECKSUMS} ("
            "migration_id VARCHAR(255) PRIMARY KEY, sha256 VARCHAR(64) NOT NULL)"
        )
    rows = backend.execute(f"SELECT migration_id, sha256 FROM {_CHECKSUMS}").fetchall()
    return {str(m): str(c) for m, c in rows}


def _check_unchanged(backend: Any, migrations: Any) -> None:
    """Fail naming the first applied migration whose files changed; remember the checksums
    of applied migrations seen for the first time."""
    stored = _stored(backend)
    applied = set(backend.get_applied_migration_hashes())
    unseen = []
    for migration in migrations:
        if migration.hash not in applied:
            continue
        current = _checksum(migration)
        if migration.id not in stored:
            unseen.append(migration)
        elif stored[migration.id] != current:
            raise UsageError(
                f"{migration.path}: migration {migration.id} was edited after it was applied; "
                "restore it and make the change in a new migration"
            )
    _record(backend, unseen)


def _record(backend: Any, migrations: Any) -> None:
    with backend.transaction():
        for migration in migrations:
            backend.execute(
                f"DELETE FROM {_CHECKSUMS} WHERE migration_id = :id", {"id": migration.id}
            )
            backend.execute(
                f"INSERT INTO {_CHECKSUMS} (migration_id, sha256) VALUES (:id, :sha)",
                {"id": migration.id, "sha": _checksum(migration)},
            )


def _forget(backend: Any, migrations: Any) -> None:
    with backend.transaction():
        for migration in migrations:
            backend.execute(
                f"DELETE FROM {_CHECKSUMS} WHERE migration_id = :id", {"id": migration.id}
            )


def _open(url: str | None) -> tuple[Any, Any]:
    from yoyo import get_backend, read_migrations

    url = url or Settings.load().database_url
    dialect = backend_of(url)
    yoyo_url = _yoyo_postgres_url(url) if dialect == "postgres" else url
    with _translated(url):
        backend = get_backend(yoyo_url)
        if dialect == "sqlite":
            _use_wal(backend.connection, Settings.load().busy_timeout_ms / 1000)
    return backend, read_migrations(str(data_dir("migrations") / dialect))


def _yoyo_postgres_url(url: str) -> str:
    """The URL for yoyo's psycopg backend. yoyo reads one host and port from a URL, so the
    hosts of a multi-host URL (`postgresql://h1:p1,h2:p2/db?target_session_attrs=read-write`)
    move to libpq's `host` and `port` lists in its query, and libpq picks among them as
    asyncpg does for the layer's own connections."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    if "," in hosts:
        names, ports = [], []
        for host in hosts.split(","):
            found = _HOST_PORT.fullmatch(host)
            if found is None:
                raise ConfigError(f"DATABASE_URL: cannot read the host {host!r}")
            names.append(found["name"].strip("[]"))
            ports.append(found["port"] or "")  # empty: libpq's default, as asyncpg's
        hosts_query = f"host={','.join(names)}"
        if any(ports):
            hosts_query += f"&port={','.join(ports)}"
        query = "&".join(filter(None, [hosts_query, parts.query]))
        parts = parts._replace(netloc=credentials + at, query=query)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


_HOST_PORT = re.compile(r"(?P<name>\[[^\]]*\]|[^:]*)(?::(?P<port>\d+))?")


def _use_wal(conn: Any, timeout: float) -> None:
    """Wait for locks like the layer's own connections do, and migrate in WAL mode, the mode
    the layer opens files in. Switching a file to WAL does not wait for the busy handler: a
    second process migrating or opening the same new file at that moment would see
    "database is locked" at once, so the switch is retried for up to `timeout` seconds."""
    import sqlite3

    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


@contextmanager
def _translated(url: str | None) -> Iterator[None]:
    """Driver errors become ours; connection failures name the database, never a password."""
    import sqlite3

    import psycopg
    from yoyo import exceptions as yoyo_errors

    try:
        yield
    except StratusError:
        raise
    except yoyo_errors.LockTimeout as exc:
        raise Conflict(f"another process holds the migration lock: {exc}") from exc
    except (yoyo_errors.BadMigration, yoyo_errors.MigrationConflict) as exc:
        raise DatabaseError(f"migrations cannot be applied: {exc}") from exc
    except (psycopg.OperationalError, sqlite3.OperationalError) as exc:
        where = (url or "").split("@")[-1]
        if isinstance(exc, psycopg.OperationalError) or "unable to open" in str(exc):
            raise DatabaseUnavailable(f"cannot reach {where}: {exc}") from exc
        raise DatabaseError(f"migration failed on {where}: {exc}") from exc
    except (psycopg.Error, sqlite3.Error) as exc:
        raise DatabaseError(f"migration failed: {exc}") from exc
