"""Statement logs, per-statement statistics, and the trace id of the current request.

Every statement is logged on the `stratus_sql` logger: at DEBUG with its name, backend, rows
and duration, and at WARNING when it ran longer than DB_SLOW_QUERY_MS. Parameters are never
logged. `JsonFormatter` writes the platform's log format; `trace(trace_id)` sets the trace
id that every log line (and, in transactions, Postgres's application_name) carries.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "JsonFormatter",
    "Observer",
    "StatementStats",
    "Timing",
    "current_trace_id",
    "logger",
    "trace",
]

logger = logging.getLogger("stratus_sql")
_trace_id: ContextVar[str | None] = ContextVar("stratus_trace_id", default=None)
_SAMPLES = 1000  # durations kept per statement for its p95


@contextmanager
def trace(trace_id: str) -> Iterator[None]:
    """Within the block, log lines and transactions carry this trace id."""
    if not isinstance(trace_id, str) or not trace_id.isprintable() or len(trace_id) > 64:
        raise ValueError("trace_id: up to 64 printable characters")
    token = _trace_id.set(trace_id)
    try:
        yield
    finally:
        _trace_id.reset(token)


def current_trace_id() -> str | None:
    return _trace_id.get()


@dataclass(frozen=True, slots=True)
class StatementStats:
    calls: int
    errors: int
    total_ms: float
    p95_ms: float
    retries: int = 0


class Observer:
    """Times statements for one Database: logs them and keeps their statistics."""

    def __init__(self, dialect: str, slow_ms: float) -> None:
        self.dialect = dialect
        self.slow_ms = slow_ms
        self._lock = threading.Lock()
        self._calls: dict[str, list[Any]] = {}  # name -> [calls, errors, total_ms, samples]
        self._retries: dict[str, int] = {}

    def timing(self, name: str) -> Timing:
        """`with observer.timing(name) as t:` times the block; set `t.rows` for the log."""
        return Timing(self, name)

    def done(self, name: str, started: float, rows: int, *, failed: bool = False) -> None:
        """Count and log one statement that began at `started` (`time.perf_counter()`)."""
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            entry = self._calls.get(name)
            if entry is None:
                entry = self._calls[name] = [0, 0, 0.0, deque(maxlen=_SAMPLES)]
            entry[0] += 1
            entry[1] += failed
            entry[2] += elapsed
            entry[3].append(elapsed)
        if elapsed > self.slow_ms or logger.isEnabledFor(logging.DEBUG):
            self._log(name, elapsed, rows, failed)

    def retried(self, name: str) -> None:
        """Count (and log at WARNING) one retry of `name` after a transient error."""
        with self._lock:
            self._retries[name] = self._retries.get(name, 0) + 1
        logger.warning(
            "retrying %s on %s after a transient error",
            name,
            self.dialect,
            extra={"trace_id": current_trace_id(), "metrics": {"statement": name}},
        )

    def _log(self, name: str, elapsed: float, rows: int, failed: bool) -> None:
        slow = elapsed > self.slow_ms
        level = logging.WARNING if slow else logging.DEBUG
        if not logger.isEnabledFor(level):
            return
        what = "slow statement" if slow else "statement"
        logger.log(
            level,
            "%s %s on %s%s",
            what,
            name,
            self.dialect,
            " failed" if failed else "",
            extra={
                "trace_id": current_trace_id(),
                "metrics": {
                    "operation_duration_ms": round(elapsed, 3),
                    "statement": name,
                    "backend": self.dialect,
                    "rows": rows,
                    "failed": failed,
                },
            },
            stacklevel=4,
        )

    def stats(self) -> dict[str, StatementStats]:
        with self._lock:
            out = {}
            for name, (calls, errors, total, samples) in self._calls.items():
                ordered = sorted(samples)
                p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0
                retries = self._retries.get(name, 0)
                out[name] = StatementStats(calls, errors, round(total, 3), round(p95, 3), retries)
            for name, retries in self._retries.items():  # retried whole transactions
                if name not in out:
                    out[name] = StatementStats(0, 0, 0.0, 0.0, retries)
            return out


class Timing:
    """One statement being timed (a plain object, not a generator: it is on every call)."""

    __slots__ = ("_name", "_observer", "_started", "rows")

    def __init__(self, observer: Observer, name: str) -> None:
        self._observer = observer
        self._name = name
        self.rows = 0

    def __enter__(self) -> Timing:
        self._started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: object, tb: object) -> None:
        failed = kind is not None
        self._observer.done(self._name, self._started, 0 if failed else self.rows, failed=failed)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, log_type DATABASE, trace_id, message,
    module, function, line, process_id, thread_id and `metrics`."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "log_type": "DATABASE",
            # Taken when the line was logged (a handler may format it later, elsewhere).
            "trace_id": getattr(record, "trace_id", current_trace_id()),
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "process_id": os.getpid() if record.process is None else record.process,
            "thread_id": record.thread,
            "metrics": getattr(record, "metrics", {}),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()
