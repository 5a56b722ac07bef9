"""Who is asking: an API key from `Authorization: Bearer <key>`, or the signed session the
sign-in form set as a cookie.

The session cookie is not the key: it names the key's id and an expiry, signed with
HMAC-SHA256 (DASHBOARD_SESSION_SECRET, else a random secret of the process), so a copied
cookie ends with its expiry, and the key behind it is checked at every request like a Bearer
key (a revoked key ends its sessions at once).

While the database is unavailable, a credential that was verified in this process within the
last SESSION_SECONDS is still recognised, as a `remembered` caller: the app answers such a
caller only with what it kept from earlier answers (marked stale), never with a fresh read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from fastapi import Request

from stratus_sql.engine import Actor, Executor
from stratus_sql.errors import DatabaseUnavailable, QueryTimeout
from stratus_sql.queries import api_keys
from stratus_sql.records import User, UserRole

__all__ = ["COOKIE", "SESSION_SECONDS", "Caller", "Remembered", "Sessions", "identify"]

COOKIE = "stratus_session"
SESSION_SECONDS = 8 * 3600

K = TypeVar("K")
V = TypeVar("V")

_TOKEN = re.compile(r"v1\.(?P<key_id>[0-9a-f]{32})\.(?P<expires>[0-9]{1,12})\.(?P<mac>[\w-]{43})")


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a request runs as; `remembered` when the database could not be asked."""

    user: User
    remembered: bool = False

    @property
    def admin(self) -> bool:
        return self.user.role == UserRole.ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user.user_id)


class Remembered(Generic[K, V]):
    """The last `size` answers the database gave, each with when it gave it (monotonic)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def keep(self, key: K, value: V) -> None:
        self._kept[key] = (time.monotonic(), value)
        self._kept.move_to_end(key)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def forget(self, key: K) -> None:
        self._kept.pop(key, None)

    def get(self, key: K, max_age: float = float("inf")) -> tuple[float, V] | None:
        """(its age in seconds, the value), when kept and not older than `max_age`."""
        found = self._kept.get(key)
        if found is None:
            return None
        age = time.monotonic() - found[0]
        return (age, found[1]) if age <= max_age else None


class Sessions:
    """Signed session tokens: `v1.<key id>.<expiry, unix seconds>.<HMAC-SHA256>`."""

    def __init__(self, secret: bytes, lifetime: int = SESSION_SECONDS) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def _mac(self, text: str) -> str:
        digest = hmac.new(self._secret, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, key_id: UUID) -> str:
        text = f"v1.{key_id.hex}.{int(time.time()) + self.lifetime}"
        return f"{text}.{self._mac(text)}"

    def key_id(self, token: str) -> UUID | None:
        """The key id a token names, when its signature holds and it has not expired."""
        shape = _TOKEN.fullmatch(token)
        if shape is None:
            return None
        text = token.rpartition(".")[0]
        if not hmac.compare_digest(self._mac(text), shape["mac"]):
            return None
        if int(shape["expires"]) <= time.time():
            return None
        return UUID(hex=shape["key_id"])


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def identify(
    db: Executor, request: Request, sessions: Sessions, remembered: Remembered[bytes, User]
) -> Caller | None:
    """The caller of a request, or None (no credential, a bad or revoked one). Raises
    DatabaseUnavailable / QueryTimeout when the database cannot tell and the credential was
    not verified in this process within SESSION_SECONDS."""
    key = _bearer(request)
    if key is not None:
        memo = b"key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        lookup = api_keys.authenticate(db, key)
    else:
        key_id = sessions.key_id(request.cookies.get(COOKIE, ""))
        if key_id is None:
            return None
        memo = b"session:" + key_id.bytes
        lookup = api_keys.active_key_owner(db, key_id)
    try:
        user = await lookup
    except (DatabaseUnavailable, QueryTimeout):
        known = remembered.get(memo, SESSION_SECONDS)
        if known is None:
            raise
        return Caller(known[1], remembered=True)
    if user is None:
        remembered.forget(memo)
        return None
    remembered.keep(memo, user)
    return Caller(user)
