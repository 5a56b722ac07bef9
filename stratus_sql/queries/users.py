"""Users: people on the platform, their role, licences and preferences.

An email is trimmed and folded (`fold_email`: NFC, Unicode full case folding, NFC again)
before it is stored or looked up, so uniqueness and lookup ignore case identically on both
backends, `straße@x.com` and `STRASSE@X.COM` included. Licence codes (PP, PC, IFR, ...) are
stored uppercased, without duplicates, in the order given.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, Field

from stratus_sql.engine import Executor, Json
from stratus_sql.errors import DatabaseError, NotFound
from stratus_sql.ids import uuid7
from stratus_sql.queries._input import (
    Input,
    JsonObject,
    NoNul,
    Unpadded,
    decode_cursor,
    encode_cursor,
    page_limit,
    text,
    uuid_arg,
    validate,
)
from stratus_sql.records import Page, User, UserRole
from stratus_sql.sqlfiles import load_queries

__all__ = [
    "create_user",
    "erase_user",
    "export_user_data",
    "fold_email",
    "get_user",
    "get_user_by_email",
    "list_users",
    "touch_last_active",
    "update_preferences",
]

STATEMENTS = load_queries("users")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_LICENSE = re.compile(r"^[A-Z0-9][A-Z0-9/-]{0,19}$")
MAX_LICENSES = 50
MAX_EMAIL = 254


def fold_email(email: str) -> str:
    """The stored form of an email: trimmed and NFC; the local part (before the last `@`)
    with Unicode full case folding, the domain lowercased (IDNA keeps `ß` and `ss` apart in
    domain names, so they are not folded together there); NFC again. Two emails name one
    user exactly when their folded forms are equal."""
    local, at, domain = unicodedata.normalize("NFC", email.strip()).rpartition("@")
    folded = f"{local.casefold()}{at}{domain.lower()}" if at else domain.casefold()
    return unicodedata.normalize("NFC", folded)


def _email(value: str) -> str:
    if len(value) > 4 * MAX_EMAIL:  # refuse huge input before normalizing it
        raise ValueError(f"longer than {MAX_EMAIL} characters")
    value = fold_email(value)
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    if len(value) > MAX_EMAIL:  # folding can lengthen a string ("ß" becomes "ss")
        raise ValueError(f"longer than {MAX_EMAIL} characters")
    return value


def _license(value: str) -> str:
    if not value.isascii():  # "ﬁ".upper() is "FI": only ASCII codes are taken as given
        raise ValueError("a licence code is ASCII letters, digits, '/' or '-'")
    value = value.upper()
    if not _LICENSE.match(value):
        raise ValueError("a licence code is 1 to 20 letters, digits, '/' or '-' (e.g. 'IFR')")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Email = Annotated[str, Field(strict=True), NoNul, AfterValidator(_email)]
License = Annotated[str, text(20), Unpadded, AfterValidator(_license)]


class NewUser(Input):
    name: Annotated[str, text(200), NoNul, Unpadded]
    email: Email
    role: UserRole
    licenses: Annotated[
        list[License], Field(max_length=MAX_LICENSES, strict=True), AfterValidator(_unique)
    ] = Field(default_factory=list)
    experience_level: Annotated[str, text(50), NoNul, Unpadded] | None = None
    preferences: JsonObject = Field(default_factory=dict)


class _Email(Input):
    email: Email


class _Changes(Input):
    changes: JsonObject


class _ListFilter(Input):
    role: UserRole | None
    license: License | None


async def create_user(
    db: Executor,
    *,
    name: str,
    email: str,
    role: UserRole | str,
    licenses: list[str] | tuple[str, ...] = (),
    experience_level: str | None = None,
    preferences: dict[str, Any] | None = None,
) -> User:
    """Create a user. Raises InvalidInput for bad arguments, AlreadyExists for a taken email."""
    new = validate(
        NewUser,
        name=name,
        email=email,
        role=role,
        licenses=list(licenses) if isinstance(licenses, list | tuple) else licenses,
        experience_level=experience_level,
        preferences={} if preferences is None else preferences,
    )
    user = await db.fetch_one(
        User,
        STATEMENTS.create_user,
        user_id=uuid7(),
        name=new.name,
        email=new.email,
        role=new.role,
        licenses=Json(new.licenses),
        experience_level=new.experience_level,
        preferences=Json(new.preferences),
    )
    if user is None:  # INSERT ... RETURNING always yields its row
        raise DatabaseError("create_user returned no row")
    return user


async def get_user(db: Executor, user_id: UUID | str) -> User | None:
    """The user with this id, or None."""
    return await db.fetch_one(User, STATEMENTS.get_user, user_id=uuid_arg(user_id, "user_id"))


async def get_user_by_email(db: Executor, email: str) -> User | None:
    """The user with this email, whatever its case, or None."""
    wanted = validate(_Email, email=email).email
    return await db.fetch_one(User, STATEMENTS.get_user_by_email, email=wanted)


async def update_preferences(db: Executor, user_id: UUID | str, changes: dict[str, Any]) -> User:
    """Merge `changes` into the user's preferences (RFC 7396: nested objects merge, a None
    value removes the key) and return the updated user. NotFound if there is no such user."""
    uid = uuid_arg(user_id, "user_id")
    patch = validate(_Changes, changes=changes).changes
    user = await db.fetch_one(User, STATEMENTS.update_preferences, user_id=uid, changes=Json(patch))
    if user is None:
        raise NotFound(f"no user {uid}")
    return user


async def list_users(
    db: Executor,
    *,
    role: UserRole | str | None = None,
    license: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> Page[User]:
    """Users in creation order, `limit` at a time, optionally of one `role` or holding one
    `license` code. Pass the page's `next_cursor` as `after` for the next page."""
    filters = validate(_ListFilter, role=role, license=license)
    size = page_limit(limit)
    after_id = None if after is None else decode_cursor(after, UUID)[0]
    users = await db.fetch_many(
        User,
        STATEMENTS.list_users,
        role=filters.role,
        license=filters.license,
        after=after_id,
        limit=size + 1,
    )
    more = len(users) > size
    items = users[:size]
    return Page[User](
        items=items, next_cursor=encode_cursor(str(items[-1].user_id)) if more else None
    )


async def touch_last_active(db: Executor, user_id: UUID | str) -> None:
    """Set the user's `last_active` to now. NotFound if there is no such user."""
    uid = uuid_arg(user_id, "user_id")
    if await db.execute_rows(STATEMENTS.touch_last_active, user_id=uid) == 0:
        raise NotFound(f"no user {uid}")


# LGPD rights live beside the other tables they reach; they are part of this module's API.
from stratus_sql.queries.privacy import erase_user, export_user_data  # noqa: E402
