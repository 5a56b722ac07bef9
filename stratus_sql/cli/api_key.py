"""`stratus-sql api-key create | list | revoke`: a user's API keys from the command line.

`create --email EMAIL` prints who the key is for and its id, then the key alone on the last
line (`| tail -1` takes it): it is shown this once, only its SHA-256 is stored. `list --email
EMAIL` prints one line per key, oldest first; `revoke KEY_ID` revokes one. An unknown email
or key is NotFound: one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from stratus_sql.database import connect
from stratus_sql.errors import NotFound
from stratus_sql.queries import api_keys, users
from stratus_sql.records import ApiKey, User

__all__ = ["add_api_key_parser", "api_key_command"]


def add_api_key_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `api-key` command and its actions, under the `stratus-sql` parser's commands."""
    keys = commands.add_parser("api-key", help="create, list or revoke a user's API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new key; printed once, as the last line")
    create.add_argument("--email", required=True, help="the user's email")
    listing = actions.add_parser("list", help="the user's keys, oldest first")
    listing.add_argument("--email", required=True, help="the user's email")
    revoke = actions.add_parser("revoke", help="revoke a key: it no longer authenticates")
    revoke.add_argument("key_id")


async def api_key_command(url: str, args: argparse.Namespace) -> list[str]:
    """The lines `stratus-sql api-key <action>` prints."""
    async with await connect(url) as db:
        if args.action == "revoke":
            key = await api_keys.revoke_api_key(db, args.key_id)
            return [f"revoked API key {key.key_id} at {_when(key.revoked_at)}"]
        user = await users.get_user_by_email(db, args.email)
        if user is None:
            raise NotFound(f"no user with email {args.email}")
        if args.action == "create":
            made = await api_keys.create_api_key(db, user_id=user.user_id)
            return [
                f"created API key {made.key_id} for {_who(user)}",
                "the key, shown this once (only its SHA-256 is stored):",
                made.key,
            ]
        return [_line(key) for key in await api_keys.list_api_keys(db, user.user_id)]


def _who(user: User) -> str:
    return f"{user.name} <{user.email}> (user {user.user_id})"


def _line(key: ApiKey) -> str:
    state = "active" if key.revoked_at is None else f"revoked {_when(key.revoked_at)}"
    return f"{key.key_id}  created {_when(key.created_at)}  {state}"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
