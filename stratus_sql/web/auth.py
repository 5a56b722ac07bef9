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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
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

_TOKEN = re.compile(
    r"v1\.(?P<key_id>[0-9a-f]{32})\.(?P<expires>[0-9]{1,12})\.(?P<mac>[A-Za-z0-9_-]{43})"
)
# The key id a Bearer key names, when it is shaped like a key.
_KEY_ID = re.compile(r"sk_(?P<key_id>[0-9a-f]{32})_")


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

    def keep(self, key: K, value: V, at: float | None = None) -> None:
        """Keep `value`, as of `at` (time.monotonic(); default now)."""
        self._kept[key] = (time.monotonic() if at is None else at, value)
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
        if not hmac.compare_digest(self._mac(text).encode(), shape["mac"].encode()):
            return None
        if int(shape["expires"]) <= time.time():
            return None
        return UUID(hex=shape["key_id"])


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# What a key's owner check found, by key id: the owner, and the hashes of the Bearer keys
# seen for it (a session needs none: its signature already ties it to the key id).
Verified = tuple[frozenset[bytes], User]


async def identify(
    db: Executor,
    request: Request,
    sessions: Sessions,
    remembered: Remembered[bytes, Verified],
    reuse_seconds: float = 0.0,
) -> Caller | None:
    """The caller of a request, or None (no credential, a bad or revoked one). A credential
    verified within `reuse_seconds` is taken without asking again (so a revocation counts
    within that time). Raises DatabaseUnavailable / QueryTimeout when the database cannot
    tell and the credential was not verified in this process within SESSION_SECONDS."""
    key = _bearer(request)
    lookup: Callable[[], Awaitable[User | None]]
    if key is not None:
        shape = _KEY_ID.match(key)
        if shape is None:
            return None
        key_id = UUID(hex=shape["key_id"])
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        lookup = partial(api_keys.authenticate, db, key)
    else:
        found = sessions.key_id(request.cookies.get(COOKIE, ""))
        if found is None:
            return None
        key_id, digest = found, b""
        lookup = partial(api_keys.active_key_owner, db, key_id)
    memo = key_id.bytes

    def known(max_age: float) -> User | None:
        kept = remembered.get(memo, max_age)
        return kept[1][1] if kept is not None and (not digest or digest in kept[1][0]) else None

    recent = known(reuse_seconds) if reuse_seconds else None
    if recent is not None:
        return Caller(recent)
    started = time.monotonic()
    try:
        user = await lookup()
    except (DatabaseUnavailable, QueryTimeout):
        last = known(SESSION_SECONDS)
        if last is None:
            raise
        return Caller(last, remembered=True)
    if user is None:
        # A revoked key (not a wrong secret, which anyone can send for a known key id)
        # forgets every credential of the key, Bearer and session alike.
        if not digest or await api_keys.active_key_owner(db, key_id) is None:
            remembered.forget(memo)
        return None
    previous = remembered.get(memo)
    seen = (previous[1][0] if previous else frozenset()) | ({digest} if digest else set())
    remembered.keep(memo, (frozenset(seen), user), at=started)
    return Caller(user)
