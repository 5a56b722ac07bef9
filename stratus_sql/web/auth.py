"""Who is asking: an API key from `Authorization: Bearer <key>` or the session cookie.

Every request is checked against the database (a revoked key stops working at its next
request). While the database is unavailable, a key that authenticated earlier in this process
is still taken, so that its owner sees the last good series under the stale banner; a key never
seen before is refused with 503 then, and nothing is remembered beyond the process.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from fastapi import Request

from stratus_sql.engine import Actor, Executor
from stratus_sql.errors import DatabaseUnavailable, QueryTimeout
from stratus_sql.queries import api_keys
from stratus_sql.records import User, UserRole

__all__ = ["COOKIE", "Caller", "Remembered", "identify", "presented_key"]

COOKIE = "stratus_session"

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a request runs as."""

    user: User

    @property
    def admin(self) -> bool:
        return self.user.role == UserRole.ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user.user_id)


class Remembered(Generic[K, V]):
    """The last `size` answers the database gave, kept in this process for its outages."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[K, V] = OrderedDict()

    def keep(self, key: K, value: V) -> None:
        self._kept[key] = value
        self._kept.move_to_end(key)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def forget(self, key: K) -> None:
        self._kept.pop(key, None)

    def get(self, key: K) -> V | None:
        return self._kept.get(key)


def presented_key(request: Request) -> str | None:
    """The key of a request: the Bearer token, else the session cookie, else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(COOKIE) or None


async def identify(
    db: Executor, key: str | None, remembered: Remembered[bytes, User]
) -> Caller | None:
    """The caller a key belongs to, or None (no key, an unknown or revoked one). Raises
    DatabaseUnavailable / QueryTimeout when the database cannot tell and the key has not
    authenticated in this process before."""
    if key is None:
        return None
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    try:
        user = await api_keys.authenticate(db, key)
    except (DatabaseUnavailable, QueryTimeout):
        known = remembered.get(digest)
        if known is None:
            raise
        return Caller(known)
    if user is None:
        remembered.forget(digest)
        return None
    remembered.keep(digest, user)
    return Caller(user)
