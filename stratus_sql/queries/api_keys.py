"""API keys: per-user keys for services, stored only as their SHA-256.

A key reads `sk_<key_id as 32 lowercase hex digits>_<secret>`, the secret being
`secrets.token_urlsafe(32)` (43 characters). The table keeps the key's id and the SHA-256 of
the whole key (its UTF-8 bytes); the key itself is returned once, by `create_api_key`, and
cannot be read back. `authenticate` finds a key by the id it carries and compares hashes in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from uuid import UUID

from stratus_sql.engine import Executor
from stratus_sql.errors import DatabaseError, InvalidInput, NotFound
from stratus_sql.ids import uuid7
from stratus_sql.queries._input import uuid_arg
from stratus_sql.queries.privacy import is_erased
from stratus_sql.records import ApiKey, ApiKeyOwner, NewApiKey, User
from stratus_sql.sqlfiles import load_queries
from stratus_sql.statements import NamedStatement

__all__ = [
    "active_key_owner",
    "authenticate",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
]

STATEMENTS = load_queries("api_keys")

_KEY = re.compile(r"sk_(?P<key_id>[0-9a-f]{32})_[A-Za-z0-9_-]{43}")
# Compared with when a key names no stored key, so that the hash comparison is the same
# work either way (key ids are not secret: the CLI and the audit trail show them).
_NO_SUCH_KEY = hashlib.sha256(b"stratus_sql: no API key has this id").digest()


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


async def create_api_key(db: Executor, *, user_id: UUID | str) -> NewApiKey:
    """Make a key for a user: the stored record, and the key itself (`.key`), which is
    shown this once. NotFound if the user does not exist, or was erased
    (`privacy.is_erased`): an erased person gets no new way in.

    Statements, in order: `lock_key_owner` (which holds off a concurrent erasure until the
    key is written, so no key outlives one), `create_api_key`.
    """
    uid = uuid_arg(user_id, "user_id")
    key_id = uuid7()
    key = f"sk_{key_id.hex}_{secrets.token_urlsafe(32)}"
    async with db.transaction() as tx:
        owner = await tx.fetch_one(User, STATEMENTS.lock_key_owner, user_id=uid)
        if owner is None:
            raise NotFound(f"no user {uid}")
        if is_erased(owner):
            raise NotFound(f"user {uid} was erased")
        stored = await tx.fetch_one(
            ApiKey, STATEMENTS.create_api_key, key_id=key_id, user_id=uid, key_hash=_hash(key)
        )
    if stored is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError("create_api_key returned no row")
    return NewApiKey(**stored.model_dump(), key=key)


async def list_api_keys(db: Executor, user_id: UUID | str) -> list[ApiKey]:
    """The user's keys, oldest first, revoked ones included."""
    uid = uuid_arg(user_id, "user_id")
    return await db.fetch_many(ApiKey, STATEMENTS.list_api_keys, user_id=uid)


async def revoke_api_key(db: Executor, key_id: UUID | str) -> ApiKey:
    """Revoke a key: `authenticate` refuses it from then on. Revoking it again changes
    nothing (it keeps the time it was first revoked). NotFound if there is no such key."""
    kid = uuid_arg(key_id, "key_id")
    revoked = await db.fetch_one(ApiKey, STATEMENTS.revoke_api_key, key_id=kid)
    if revoked is None:
        raise NotFound(f"no API key {kid}")
    return revoked


async def authenticate(db: Executor, key: str) -> User | None:
    """The user whose key this is, or None: for anything not shaped like a key (it is
    untrusted input), a key id that names no key, a wrong secret, a revoked key, or a user
    who was erased. InvalidInput only when `key` is not a str. One statement runs, only for
    a key of the right shape, and on the primary even when a replica is configured, so a
    revocation counts from the moment it commits.

    Statement: `authenticate`.
    """
    if not isinstance(key, str):
        raise InvalidInput(f"key: expected a str, got {type(key).__name__}")
    shape = _KEY.fullmatch(key)
    if shape is None:
        return None
    found = await _owner(db, STATEMENTS.authenticate, UUID(hex=shape["key_id"]))
    matches = hmac.compare_digest(_hash(key), _NO_SUCH_KEY if found is None else found.key_hash)
    return _active(found) if matches else None


async def active_key_owner(db: Executor, key_id: UUID | str) -> User | None:
    """The user of the key with this id while it is active, or None: for an unknown or
    revoked key, or an erased user. For a credential derived from a key that the caller
    has already verified (the dashboard's signed session), read on the primary like
    `authenticate`.

    Statement: `active_key_owner`.
    """
    return _active(await _owner(db, STATEMENTS.active_key_owner, uuid_arg(key_id, "key_id")))


async def _owner(db: Executor, statement: NamedStatement, key_id: UUID) -> ApiKeyOwner | None:
    with db.database.primary():
        return await db.fetch_one(ApiKeyOwner, statement, key_id=key_id)


def _active(found: ApiKeyOwner | None) -> User | None:
    if found is None or found.revoked_at is not None:
        return None
    user = User.model_construct(**{name: getattr(found, name) for name in User.model_fields})
    return None if is_erased(user) else user
