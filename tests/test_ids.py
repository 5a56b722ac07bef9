"""UUIDv7 ids: version, variant, time, and order within a process."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from stratus_sql.ids import uuid7


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
