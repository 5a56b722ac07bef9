"""queries.api_keys and `stratus-sql api-key`, on every leg: keys made, listed, revoked and
checked, stored only as hashes; row-level security on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import stratus_sql
from stratus_sql import Actor, Database, InvalidInput, NotFound
from stratus_sql.cli import main
from stratus_sql.queries import api_keys, audit, users
from stratus_sql.records import ApiKey, NewApiKey, User
from tests.checks import adhoc, present
from tests.test_properties import EXAMPLES

KEY_SHAPE = re.compile(r"sk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")


def stored(key: NewApiKey) -> ApiKey:
    """The record the listing gives for a key just made: the same, without the key."""
    return ApiKey(**key.model_dump(exclude={"key"}))


async def someone(db: Database, role: str = "pilot") -> User:
    return await users.create_user(
        db, name="Bia Souza", email=f"k.{uuid.uuid4().hex[:10]}@example.com", role=role
    )


async def test_create_list_revoke_and_authenticate(db: Database, user: User) -> None:
    first = await api_keys.create_api_key(db, user_id=user.user_id)
    second = await api_keys.create_api_key(db, user_id=str(user.user_id))
    assert (first.user_id, first.revoked_at) == (user.user_id, None)
    assert first.created_at.tzinfo is not None
    assert first.key != second.key
    assert await api_keys.list_api_keys(db, user.user_id) == [stored(first), stored(second)]
    assert await api_keys.authenticate(db, first.key) == user
    assert await api_keys.authenticate(db, second.key) == user

    revoked = await api_keys.revoke_api_key(db, first.key_id)
    assert revoked.key_id == first.key_id
    revoked_at = present(revoked.revoked_at)
    assert revoked_at >= first.created_at
    assert await api_keys.authenticate(db, first.key) is None
    assert await api_keys.authenticate(db, second.key) == user  # the other key still works
    assert await api_keys.revoke_api_key(db, str(first.key_id)) == revoked  # first time kept
    assert await api_keys.list_api_keys(db, user.user_id) == [revoked, stored(second)]


async def test_a_key_is_sk_its_id_in_hex_and_a_token(db: Database, user: User) -> None:
    made = await api_keys.create_api_key(db, user_id=user.user_id)
    shape = KEY_SHAPE.fullmatch(made.key)
    assert shape is not None, made.key
    assert shape[1] == made.key_id.hex
    assert made.key not in repr(made)  # shown once, not carried into logs


async def test_only_the_keys_sha256_is_stored_and_the_trail_holds_no_hash(
    db: Database, user: User
) -> None:
    made = await api_keys.create_api_key(db, user_id=user.user_id)
    await api_keys.revoke_api_key(db, made.key_id)
    digest = hashlib.sha256(made.key.encode()).digest()
    (row,) = await db.fetch_many(StoredKey, READ_TABLE, user_id=user.user_id)
    assert row.key_hash == digest
    assert len(row.key_hash) == 32
    assert made.key.encode() not in row.key_hash
    trail = await audit.list_audit(db, table_name="api_keys", record_id=made.key_id)
    assert [(a.action, a.subject_id) for a in trail] == [
        ("UPDATE", user.user_id),
        ("INSERT", user.user_id),
    ]
    for entry in trail:
        written = f"{entry.old_values} {entry.new_values}"
        assert "key_hash" not in written
        assert digest.hex() not in written
        assert made.key not in written
    assert set(present(trail[-1].new_values)) == {"key_id", "user_id", "created_at", "revoked_at"}


class StoredKey(BaseModel):
    """What the table holds for a key, read behind the layer's back."""

    key_id: uuid.UUID
    key_hash: bytes
    revoked_at: object


_READ_TABLE = "SELECT key_id, key_hash, revoked_at FROM api_keys WHERE user_id = :user_id"
READ_TABLE = adhoc("stored_keys :many -> StoredKey", postgres=_READ_TABLE, sqlite=_READ_TABLE)


def near_misses(key: str) -> list[str]:
    """Strings a key's holder could mistype, or an attacker try: none authenticates."""
    key_id, secret = key[3:35], key[36:]
    return [
        "",
        "sk_",
        key[:-1],
        key + "A",
        key + "\n",
        " " + key,
        key.upper(),
        "pk_" + key[3:],
        "sk-" + key[3:],
        f"sk_{key_id}-{secret}",
        f"sk_{key_id.upper()}_{secret}",
        f"sk_{key_id[:-1]}g_{secret}",
        f"sk_{uuid.UUID(hex=key_id)}_{secret}",  # the id with its dashes
        f"sk_{key_id}_{secret[:-1]}!",
        f"sk_{key_id}_{secret[:-1]}\u00e9",
        f"sk_{key_id}_{secret[:-1]}\x00",
        f"sk_{key_id}_{secret[:-1]}\ud800",  # a lone surrogate
        f"sk_{key_id}_{'A' * 43}",  # the right id, a wrong secret
        "x" * 1_000_000,
    ]


async def test_anything_but_the_key_itself_is_none(db: Database, user: User) -> None:
    made = await api_keys.create_api_key(db, user_id=user.user_id)
    for attempt in near_misses(made.key):
        assert await api_keys.authenticate(db, attempt) is None, repr(attempt[:80])
    assert await api_keys.authenticate(db, made.key) == user


@EXAMPLES
@given(
    text=st.text(st.characters(codec=None, categories=None), max_size=120)
    | st.from_regex(KEY_SHAPE, fullmatch=True)
)
async def test_arbitrary_text_is_none_never_an_error(db: Database, text: str) -> None:
    assert await api_keys.authenticate(db, text) is None


@pytest.mark.parametrize("key", [None, b"sk_", 7, ["sk_"]])
async def test_a_key_that_is_not_a_str_is_invalid_input(db: Database, key: object) -> None:
    with pytest.raises(InvalidInput, match="key"):
        await api_keys.authenticate(db, key)  # type: ignore[arg-type]


async def test_unknown_ids_and_other_users_key_ids_are_none(db: Database, user: User) -> None:
    mine = await api_keys.create_api_key(db, user_id=user.user_id)
    other = await someone(db)
    theirs = await api_keys.create_api_key(db, user_id=other.user_id)
    secret = mine.key[36:]
    assert await api_keys.authenticate(db, f"sk_{uuid.uuid4().hex}_{secret}") is None
    # Another user's key id with my secret, or with the secret of neither.
    assert await api_keys.authenticate(db, f"sk_{theirs.key_id.hex}_{secret}") is None
    assert await api_keys.authenticate(db, f"sk_{theirs.key_id.hex}_{'b' * 43}") is None
    assert await api_keys.authenticate(db, theirs.key) == other


async def test_missing_rows_and_bad_ids(db: Database, user: User) -> None:
    with pytest.raises(NotFound, match="no user"):
        await api_keys.create_api_key(db, user_id=uuid.uuid4())
    with pytest.raises(NotFound, match="no API key"):
        await api_keys.revoke_api_key(db, uuid.uuid4())
    assert await api_keys.list_api_keys(db, uuid.uuid4()) == []
    assert await api_keys.list_api_keys(db, user.user_id) == []
    with pytest.raises(InvalidInput, match="user_id"):
        await api_keys.create_api_key(db, user_id="not-a-uuid")
    with pytest.raises(InvalidInput, match="key_id"):
        await api_keys.revoke_api_key(db, "sk_not_a_key_id")
    assert await api_keys.list_api_keys(db, user.user_id) == []


_ADD_KEY = "INSERT INTO api_keys (key_id, user_id, key_hash) VALUES (:key_id, :user_id, :key_hash)"
ADD_KEY = adhoc("add_key :exec", postgres=_ADD_KEY, sqlite=_ADD_KEY)


async def test_an_erased_user_gets_no_key_and_no_key_of_theirs_authenticates(db: Database) -> None:
    person = await someone(db)
    made = await api_keys.create_api_key(db, user_id=person.user_id)
    assert await users.erase_user(db, person.user_id) is True
    assert await api_keys.list_api_keys(db, person.user_id) == []
    assert await api_keys.authenticate(db, made.key) is None
    with pytest.raises(NotFound, match="erased"):
        await api_keys.create_api_key(db, user_id=person.user_id)
    # A key row written for them behind the layer's back does not let them in either.
    await db.execute(
        ADD_KEY,
        key_id=made.key_id,
        user_id=person.user_id,
        key_hash=hashlib.sha256(made.key.encode()).digest(),
    )
    assert await api_keys.authenticate(db, made.key) is None


async def test_the_api_key_commands(
    db: Database, user: User, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*argv: str) -> int:
        return main(["--url", database_url, "api-key", *argv])

    assert await asyncio.to_thread(run, "create", "--email", user.email.upper()) == 0
    lines = capsys.readouterr().out.splitlines()
    (made,) = await api_keys.list_api_keys(db, user.user_id)
    assert str(made.key_id) in lines[0]
    assert user.email in lines[0]
    assert await api_keys.authenticate(db, lines[-1]) == user  # `| tail -1` is the key

    assert await asyncio.to_thread(run, "list", "--email", user.email) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{made.key_id}  created {made.created_at:%Y-%m-%d}")
    assert line.endswith("  active")

    assert await asyncio.to_thread(run, "revoke", str(made.key_id)) == 0
    assert capsys.readouterr().out.startswith(f"revoked API key {made.key_id} at ")
    assert await api_keys.authenticate(db, lines[-1]) is None
    assert await asyncio.to_thread(run, "list", "--email", user.email) == 0
    (line,) = capsys.readouterr().out.splitlines()
    revoked_at = present((await api_keys.list_api_keys(db, user.user_id))[0].revoked_at)
    assert line.endswith(f"  revoked {revoked_at:%Y-%m-%dT%H:%M:%S}Z")

    for argv, said in (
        (("create", "--email", "ninguem@example.com"), "no user with email"),
        (("list", "--email", "ninguem@example.com"), "no user with email"),
        (("revoke", str(uuid.uuid4())), "no API key"),
        (("revoke", "nope"), "key_id"),
    ):
        assert await asyncio.to_thread(run, *argv) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        (message,) = captured.err.splitlines()
        assert message.startswith("stratus-sql api-key: ")
        assert said in message


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Database]:
    async with await stratus_sql.connect(pg_url) as db:
        yield db


async def test_a_scoped_actor_sees_and_changes_only_its_own_keys(pg: Database) -> None:
    a, b, admin = await someone(pg), await someone(pg), await someone(pg, role="admin")
    a_key = await api_keys.create_api_key(pg, user_id=a.user_id)
    b_key = await api_keys.create_api_key(pg, user_id=b.user_id)
    async with pg.transaction(actor=Actor(user_id=a.user_id), scoped=True) as tx:
        assert await api_keys.list_api_keys(tx, a.user_id) == [stored(a_key)]
        assert await api_keys.list_api_keys(tx, b.user_id) == []
        assert [r.key_id for r in await tx.fetch_many(StoredKey, READ_ALL)] == [a_key.key_id]
        assert await api_keys.authenticate(tx, b_key.key) is None
        assert await api_keys.authenticate(tx, a_key.key) == a
        with pytest.raises(NotFound):
            await api_keys.revoke_api_key(tx, b_key.key_id)
        with pytest.raises(NotFound):
            await api_keys.create_api_key(tx, user_id=b.user_id)
        own = await api_keys.create_api_key(tx, user_id=a.user_id)
    assert [k.key_id for k in await api_keys.list_api_keys(pg, a.user_id)] == [
        a_key.key_id,
        own.key_id,
    ]
    async with pg.transaction(actor=Actor(user_id=admin.user_id), scoped=True) as tx:
        assert await api_keys.list_api_keys(tx, b.user_id) == [stored(b_key)]  # reads all
        with pytest.raises(NotFound):
            await api_keys.revoke_api_key(tx, b_key.key_id)  # writes only its own
    assert await api_keys.list_api_keys(pg, b.user_id) == [stored(b_key)]


READ_ALL = adhoc(
    "every_key :many -> StoredKey",
    postgres="SELECT key_id, key_hash, revoked_at FROM api_keys",
)


async def test_keys_are_checked_on_the_primary_even_with_a_replica(
    pg_url: str, new_pg_database: Callable[[], str]
) -> None:
    """With DATABASE_REPLICA_URL set, reads outside a transaction go to the replica; a key
    is checked on the primary all the same, so a revocation counts from its commit. The
    stand-in replica here is a migrated database that never saw the key."""
    behind = new_pg_database()
    stratus_sql.apply_migrations(behind)
    settings = stratus_sql.Settings.load(replica_url=behind, memory_cache_size=0)
    async with await stratus_sql.connect(pg_url, settings=settings) as db:
        owner = await someone(db)
        made = await api_keys.create_api_key(db, user_id=owner.user_id)
        assert await users.get_user(db, owner.user_id) is None  # the replica answers reads
        found = await api_keys.authenticate(db, made.key)
        assert found is not None
        assert found.user_id == owner.user_id
        assert await api_keys.active_key_owner(db, made.key_id) == found
        await api_keys.revoke_api_key(db, made.key_id)
        assert await api_keys.authenticate(db, made.key) is None
        assert await api_keys.active_key_owner(db, made.key_id) is None


async def test_the_owner_of_an_active_key_by_its_id(db: Database, user: User) -> None:
    made = await api_keys.create_api_key(db, user_id=user.user_id)
    assert await api_keys.active_key_owner(db, made.key_id) == user
    assert await api_keys.active_key_owner(db, str(made.key_id)) == user
    assert await api_keys.active_key_owner(db, uuid.uuid4()) is None
    with pytest.raises(InvalidInput, match="key_id"):
        await api_keys.active_key_owner(db, "nope")
    await api_keys.revoke_api_key(db, made.key_id)
    assert await api_keys.active_key_owner(db, made.key_id) is None
