"""The dashboard app under test: people with keys and samples, in-process clients, and the
app served for real by `stratus-sql serve` in a process of its own."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import httpx

from stratus_sql import Database
from stratus_sql.queries import api_keys, dashboards, metrics, users
from stratus_sql.records import Dashboard, User
from stratus_sql.web import create_app
from tests.servers import free_port, running


@dataclass(frozen=True)
class Person:
    user: User
    key: str
    board: Dashboard
    key_id: UUID


async def person(db: Database, role: str = "pilot", *, samples: int = 0) -> Person:
    """A user with an API key and a dashboard holding `samples` samples, one every 90
    minutes back from half an hour ago (never within half an hour of a bucket edge, for a
    series read now or in the next minutes)."""
    tag = secrets.token_hex(4)
    user = await users.create_user(db, name=f"Ana {tag}", email=f"ana.{tag}@example.com", role=role)
    board = await dashboards.create_dashboard(db, user_id=user.user_id, name=f"Painel {tag}")
    key = await api_keys.create_api_key(db, user_id=user.user_id)
    made = Person(user, key.key, board, key.key_id)
    await metrics.record_metrics(db, [sample(made, 30 + 90 * i, i) for i in range(samples)])
    return made


def sample(owner: Person, minutes: float, i: int = 0) -> dict[str, Any]:
    """A sample of the person's dashboard, `minutes` ago; `i` varies its values."""
    return {
        "user_id": owner.user.user_id,
        "dashboard_id": owner.board.dashboard_id,
        "timestamp": datetime.now(UTC) - timedelta(minutes=minutes),
        "ia_efficiency": 0.5 + (i % 7) / 20,
        "model_accuracy": 0.8 + (i % 3) / 20,
        "processing_time_ms": 100.0 + 13 * (i % 11),
        "memory_usage_mb": 512.0 + i,
        "error_rate": (i % 5) / 100,
    }


def client(
    db: Database, key: str | None = None, *, base: str = "http://127.0.0.1"
) -> httpx.AsyncClient:
    """An in-process client of the app over `db`, as if at `base`, sending `key` as a Bearer
    token."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(db=db)), base_url=base, headers=headers
    )


@contextmanager
def served(url: str, reuse_seconds: float = 0.0, *extra: str) -> Iterator[str]:
    """`stratus-sql serve --url URL` on a free loopback port (each request reads, unless
    `reuse_seconds`); yields its base URL and stops the process (by its PID) afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    program = str(Path(sys.executable).parent / "stratus-sql")
    reuse = str(reuse_seconds)
    # The server's output goes to a file: a pipe nobody reads would fill up and stop it.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [program, "--url", url, "serve", "--port", str(port), "--reuse-seconds", reuse, *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        try:
            _wait_for(base, process, log)
            yield base
        finally:
            if running(process.pid):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_for(base: str, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    """Until the server answers (30 s at most); its output when it exits instead."""
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"stratus-sql serve exited: {log.read().decode()}")
        try:
            with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("stratus-sql serve did not answer in 30 s") from None
            time.sleep(0.1)
