"""A throwaway database for a benchmark, on STRATUS_BENCH_SERVER (default the local server)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """Create `<prefix>_<pid>` on the server, yield its URL, and drop it afterwards."""
    server = os.environ.get("STRATUS_BENCH_SERVER", "postgresql://root@127.0.0.1:5432/postgres")
    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
