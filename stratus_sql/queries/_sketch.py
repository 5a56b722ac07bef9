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

__all__ = ["ACCURACY", "ZERO_BIN", "p95", "value_of"]

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


def p95(bins: Sequence[int], counts: Sequence[int]) -> float | None:
    """The 95th percentile as percentile_cont computes it (linear interpolation between the
    values at ranks floor(h) and floor(h) + 1, h = 0.95 (n - 1)), each value estimated by its
    bucket; None for an empty sketch. `bins[i]` holds `counts[i]` values; a bin may repeat
    (the sketches of several hours end to end)."""
    merged: dict[int, int] = {}
    for k, n in zip(bins, counts, strict=True):
        merged[k] = merged.get(k, 0) + n
    ordered = sorted(merged.items())
    total = sum(merged.values())
    if total <= 0:
        return None
    h = 0.95 * (total - 1)
    low = math.floor(h)
    low_value = _at(ordered, low)
    return low_value + (h - low) * (_at(ordered, min(low + 1, total - 1)) - low_value)


def _at(bins: list[tuple[int, int]], rank: int) -> float:
    """The estimated value at `rank` (0-based) of bins sorted by bucket."""
    seen = 0
    for k, n in bins:
        seen += n
        if seen > rank:
            return value_of(k)
    return value_of(bins[-1][0])
