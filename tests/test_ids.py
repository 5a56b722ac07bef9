"""UUIDv7 ids: version, variant, time, and order within a process."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from stratus_sql import ids
from stratus_sql.ids import uuid7

# The layout in stratus_sql.ids: 48-bit milliseconds | version | 42-bit counter | variant | 32
# random bits, the counter split 12 bits above the variant and 30 below it.
COUNTER_MAX = (1 << 42) - 1


def counter_of(value: uuid.UUID) -> int:
    """The 42-bit counter an id carries."""
    return ((value.int >> 64) & 0xFFF) << 30 | (value.int >> 32) & ((1 << 30) - 1)


def test_version_variant_and_timestamp() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == "specified in RFC 4122"
    assert before <= value.int >> 80 <= after + 1


def test_ids_made_one_after_another_always_increase() -> None:
    ids = [uuid7() for _ in range(50_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert str(ids[0]) < str(ids[-1])  # text order (SQLite) agrees with byte order (Postgres)


def test_ids_from_many_threads_are_unique() -> None:
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: [uuid7() for _ in range(5_000)], range(4)))
    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every)
    assert all(batch == sorted(batch) for batch in batches)


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    first = uuid7()
    monkeypatch.setattr(time, "time_ns", lambda: (first.int >> 80) * 1_000_000 - 5_000_000_000)
    later = [uuid7() for _ in range(100)]
    assert later == sorted(later)
    assert first < later[0]


def test_counter_overflow_moves_to_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    first = uuid7()
    ms = first.int >> 80
    monkeypatch.setattr(time, "time_ns", lambda: ms * 1_000_000)
    # The counter starts each millisecond below 2**41: no run of calls reaches its maximum
    # within a test, so the generator's state is set to it directly.
    monkeypatch.setattr(ids, "_counter", COUNTER_MAX)
    nxt = uuid7()
    assert nxt > first
    assert nxt.int >> 80 == ms + 1


def test_a_forked_child_starts_its_own_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = uuid7()
    ms = parent.int >> 80
    monkeypatch.setattr(time, "time_ns", lambda: ms * 1_000_000)  # the child's too
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id, then leave at once
        monkeypatch.setattr(os, "urandom", bytes)  # a counter seeded afresh starts at 0
        os.write(write, str(uuid7()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = uuid.UUID(os.read(read, 200).decode())
    # In the parent's millisecond the parent counts on, as a child that kept its state would;
    # a child that forgot it at the fork seeds a counter of its own.
    assert counter_of(uuid7()) == counter_of(parent) + 1
    assert child.int >> 80 == ms
    assert counter_of(child) == 0
    assert child != parent


def test_a_batch_is_a_run_of_increasing_ids() -> None:
    before = uuid7()
    batch = ids.uuid7_batch(10_000)
    after = uuid7()
    assert batch == sorted(batch)
    assert len(set(batch)) == len(batch)
    assert before < batch[0]
    assert batch[-1] < after
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in batch)
    assert uuid.UUID(str(batch[0])) == batch[0]
    assert ids.uuid7_batch(0) == []


def test_a_batch_that_would_overflow_the_counter_starts_on_the_next_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = uuid7()
    ms = first.int >> 80
    monkeypatch.setattr(time, "time_ns", lambda: ms * 1_000_000)
    monkeypatch.setattr(ids, "_counter", COUNTER_MAX - 5)  # as above: out of reach otherwise
    batch = ids.uuid7_batch(100)
    assert batch == sorted(batch)
    assert batch[0] > first
    assert {u.int >> 80 for u in batch} == {ms + 1}
