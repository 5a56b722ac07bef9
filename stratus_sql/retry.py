"""When and how soon a failed statement or transaction is tried again.

A translated error carries two flags set where the driver exception is translated:
`retryable` (the failure is transient: a serialization failure, a deadlock, a lost or
refused connection) and `in_flight` (the connection was lost after the statement was sent,
so a write may have been applied). Reads are retried on any retryable error; writes only
when nothing can have been applied.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from stratus_sql.errors import StratusError

__all__ = ["backoff", "may_retry", "retrying"]

T = TypeVar("T")

_BASE_SECONDS = 0.05
_CAP_SECONDS = 2.0


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): capped exponential
    backoff with full jitter, so clients that failed together do not retry together."""
    return random.uniform(0, min(_CAP_SECONDS, _BASE_SECONDS * 2 ** (attempt - 1)))


def may_retry(exc: StratusError, *, writes: bool) -> bool:
    """Whether running the failed work again is safe and may succeed."""
    return exc.retryable and not (writes and exc.in_flight)


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    retries: int,
    retry_if: Callable[[StratusError], bool],
    on_retry: Callable[[], None],
    failed: StratusError | None = None,
) -> T:
    """`await attempt()`, run again up to `retries` times, after a jittered backoff, while it
    fails with an error `retry_if` accepts. `failed`: the first attempt was already made by
    the caller and failed so (a statement's first try runs outside the loop, which costs
    nothing when it succeeds). The one retry loop: statements, a busy BEGIN and whole
    transactions (`run_transaction`) all go through it."""
    tries = 0
    while True:
        if failed is None:
            try:
                return await attempt()
            except StratusError as exc:
                failed = exc
        if tries >= retries or not retry_if(failed):
            raise failed
        failed = None
        tries += 1
        on_retry()
        await asyncio.sleep(backoff(tries))
