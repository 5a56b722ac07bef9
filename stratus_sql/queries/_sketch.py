"""The sketch of processing time kept in the hourly metric rollups, and its p95.

Bucket k holds the times in (G^(k-1), G^k] with G = (1 + A) / (1 - A) and A = 1%; bucket
ZERO_BIN holds the zeros. Each bucket stands for 2 G^k / (G + 1), which is within A of every
value in it (relative), so the value at any rank is estimated within 1%. Sketches merge by
adding counts, so any set of hours gives the sketch of their samples together. The bins are
computed in SQL (metrics_sketch_bin on PostgreSQL, ln() on SQLite) with the same formula;
a value on a bucket's edge may land in either neighbour, which stays within A too.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

__all__ = ["ACCURACY", "ZERO_BIN", "Incomplete", "p95", "value_of"]

ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
ZERO_BIN = -2147483648


def value_of(k: int) -> float:
    """What bucket k stands for."""
    if k == ZERO_BIN:
        return 0.0
    try:
        value = 2 / (GAMMA + 1) * GAMMA**k
    except OverflowError:  # past the largest double
        return sys.float_info.max
    return min(value, sys.float_info.max)


class Incomplete(Exception):
    """The counts given do not reach the ranks the 95th percentile needs."""


def p95(
    bins: Sequence[int],
    counts: Sequence[int],
    total: int | None = None,
    complete_from: int | None = None,
) -> float | None:
    """The 95th percentile as percentile_cont computes it (linear interpolation between the
    values at ranks floor(h) and floor(h) + 1, h = 0.95 (n - 1)), each value estimated by its
    bucket; None for an empty sketch. `bins[i]` holds `counts[i]` values; a bin may repeat
    (the sketches of several hours end to end).

    With `complete_from`, only the bins from it up are complete (parts gave only their top
    bins), and `total` says how many values there are in all: the ranks are counted from the
    top, so the result is the one the whole sketches give, or Incomplete is raised when a
    rank needed falls below `complete_from`."""
    merged: dict[int, int] = {}
    for k, n in zip(bins, counts, strict=True):
        merged[k] = merged.get(k, 0) + n
    if complete_from is None or total is None:
        total = sum(merged.values())
    if total <= 0:
        return None
    from_top = sorted(merged.items(), reverse=True)
    h = 0.95 * (total - 1)
    low = math.floor(h)
    low_value = _at(from_top, total - 1 - low, complete_from)
    high_value = _at(from_top, total - 1 - min(low + 1, total - 1), complete_from)
    return low_value + (h - low) * (high_value - low_value)


def _at(from_top: list[tuple[int, int]], rank: int, complete_from: int | None) -> float:
    """The estimated value at `rank` counted from the largest (0-based), of bins sorted
    from the largest."""
    seen = 0
    for k, n in from_top:
        if complete_from is not None and k < complete_from:
            raise Incomplete(f"rank {rank} from the top is below bin {complete_from}")
        seen += n
        if seen > rank:
            return value_of(k)
    raise Incomplete(f"rank {rank} from the top is past the counts given")
