"""Deadlines for many short waits, kept by one timer instead of one timer each.

`asyncio.timeout` arms a timer for every wait it bounds; on the path every statement takes
(a free pooled connection, which only needs connecting after the server dropped it) that
timer is most of what the layer costs over the raw driver. `Deadlines` keeps the waiting
tasks with their deadlines and one timer, armed for the earliest deadline and re-armed when
it fires; a wait that outlives its deadline is cancelled and raises TimeoutError, like
`asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """Bounds waits of the current task: `with deadlines.bound(seconds): await ...`."""

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def bound(self, seconds: float) -> _Bound:
        """Within the block, the current task waits at most `seconds`; TimeoutError after."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.bound needs a running task")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._due[task] = deadline
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._fire)
        return _Bound(self, task)

    def _leave(self, task: asyncio.Task[Any]) -> bool:
        """Forget the task's deadline; whether the deadline cancelled it. The timer only
        fires between steps of tasks, and a cancel reaches a task at the await it is
        suspended in, so a task the deadline cancelled leaves the block by that cancel."""
        self._due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        if self._due:
            self._timer = loop.call_at(min(self._due.values()), self._fire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Bound:
    """The block `Deadlines.bound` returns (a plain object: it is on every statement)."""

    __slots__ = ("_deadlines", "_task")

    def __init__(self, deadlines: Deadlines, task: asyncio.Task[Any]) -> None:
        self._deadlines = deadlines
        self._task = task

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: object, tb: object) -> None:
        expired = self._deadlines._leave(self._task)
        if expired and kind is not None and issubclass(kind, asyncio.CancelledError):
            self._task.uncancel()
            raise TimeoutError
