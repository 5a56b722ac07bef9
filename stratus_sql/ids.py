"""Time-ordered UUIDv7 ids, monotonic within a process (RFC 9562, section 6.2, method 1).

Layout: 48-bit Unix milliseconds | version 7 | 42-bit counter | variant | 32 random bits.
The counter is seeded at random (its top bit clear, leaving room to count) each new
millisecond and incremented within one, so ids made one after another always sort in the
order they were made, even many per millisecond or when the wall clock steps back.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7"]

_COUNTER_BITS = 42
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _forget_after_fork() -> None:
    # A child process must not continue its parent's counter: both would make the same
    # (millisecond, counter) pairs, told apart only by 32 random bits.
    global _last_ms, _counter
    _last_ms, _counter = 0, 0


os.register_at_fork(after_in_child=_forget_after_fork)


def _seed() -> int:
    return int.from_bytes(os.urandom(6)) & (_COUNTER_MAX >> 1)


def uuid7() -> uuid.UUID:
    """A new UUIDv7, greater than every one this process made before."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, _seed()
        else:
            _counter += 1
            if _counter > _COUNTER_MAX:
                _last_ms, _counter = _last_ms + 1, _seed()
        ms, counter = _last_ms, _counter
    rand_a = counter >> 30
    rand_b = ((counter & ((1 << 30) - 1)) << 32) | int.from_bytes(os.urandom(4))
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)
