"""Time-ordered UUIDv7 ids, monotonic within a process (RFC 9562, section 6.2, method 1).

Layout: 48-bit Unix milliseconds | version 7 | 42-bit counter | variant | 32 random bits.
The counter is seeded at random (its top bit clear, leaving room to count) each new
millisecond and incremented within one, so ids made one after another always sort in the
order they were made, even many per millisecond or when the wall clock steps back.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import uuid

__all__ = ["uuid7", "uuid7_batch"]

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


def uuid7_batch(n: int) -> list[uuid.UUID]:
    """`n` new UUIDv7s in increasing order: `uuid7()` n times, at a fraction of the cost
    (one lock, one clock read and one call for random bytes)."""
    global _last_ms, _counter
    if n <= 0:
        return []
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, _seed() - 1
        if _counter + n > _COUNTER_MAX:  # rare: start the batch on the next millisecond
            _last_ms, _counter = _last_ms + 1, _seed() - 1
        ms, first = _last_ms, _counter + 1
        _counter += n
    base = (ms << 80) | (0x7 << 76) | (0b10 << 62)
    low = (1 << 30) - 1
    noise = struct.unpack(f">{n}I", os.urandom(4 * n))
    return [
        _uuid(base | ((c >> 30) << 64) | ((c & low) << 32) | r)
        for c, r in zip(range(first, first + n), noise, strict=True)
    ]


def _uuid(value: int) -> uuid.UUID:
    # UUID(int=...) re-checks a value built right here; set its two slots directly, as
    # UUID.__setstate__ does when unpickling.
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _UNKNOWN)
    return made


_UNKNOWN = uuid.SafeUUID.unknown
