"""Small typed helpers the test modules share."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None) -> T:
    """`value`, which the test expects to be there (a row it wrote, say): None fails the test."""
    assert value is not None, "expected a value, got None"
    return value
