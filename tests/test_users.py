"""queries.users on both backends."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from stratus_sql import AlreadyExists, Database, InvalidInput, NotFound
from stratus_sql.queries import users
from stratus_sql.records import User, UserRole


def email() -> str:
    return f"piloto.{uuid.uuid4().hex[:12]}@example.com.br"


def licence() -> str:
    """A licence code no other test uses, so filtered listings see only this test's users."""
    return f"T{uuid.uuid4().hex[:10].upper()}"


async def test_create_user_round_trips_every_field(db: Database) -> None:
    before = datetime.now(UTC)
    user = await users.create_user(
        db,
        name="João Silva",
        email=email(),
        role="pilot",
        licenses=["pp", "PC", "IFR", "PC"],
        experience_level="comercial",
        preferences={"idioma": "pt-BR", "unidades": {"altitude": "ft"}, "n": [1, 2.5, None]},
    )
    assert user.name == "João Silva"
    assert user.role is UserRole.PILOT
    assert user.licenses == ["PP", "PC", "IFR"]
    assert user.experience_level == "comercial"
    assert user.preferences == {
        "idioma": "pt-BR",
        "unidades": {"altitude": "ft"},
        "n": [1, 2.5, None],
    }
    assert user.last_active is None
    assert user.created_at.tzinfo is not None
    assert (
        before - timedelta(seconds=5) <= user.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    )
    assert user.user_id.version == 7
    assert await users.get_user(db, user.user_id) == user
    assert await users.get_user(db, str(user.user_id)) == user


async def test_defaults_are_empty(db: Database) -> None:
    user = await users.create_user(db, name="Ana", email=email(), role=UserRole.MECHANIC)
    assert (user.licenses, user.preferences, user.experience_level) == ([], {}, None)


async def test_get_user_missing_is_none(db: Database) -> None:
    assert await users.get_user(db, uuid.uuid4()) is None


async def test_email_is_unique_whatever_its_case(db: Database) -> None:
    address = email()
    first = await users.create_user(db, name="Ana", email=address, role="instructor")
    with pytest.raises(AlreadyExists) as caught:
        await users.create_user(db, name="Outra", email=address.upper(), role="pilot")
    assert caught.value.constraint == "users_email_key"
    assert await users.get_user_by_email(db, address) == first


async def test_email_is_stored_lowercased_and_found_in_any_case(db: Database) -> None:
    address = email()
    user = await users.create_user(db, name="Ana", email=address.upper(), role="dispatcher")
    assert user.email == address
    assert await users.get_user_by_email(db, address.title()) == user
    assert await users.get_user_by_email(db, "ninguem@example.com") is None


async def test_emails_are_one_address_under_full_case_folding(db: Database) -> None:
    tag = uuid.uuid4().hex[:8]
    # lower() alone would make these two users: "straße".lower() keeps the ß.
    street = await users.create_user(
        db, name="Ana", email=f"straße.{tag}@example.com", role="pilot"
    )
    assert street.email == f"strasse.{tag}@example.com"
    with pytest.raises(AlreadyExists) as caught:
        await users.create_user(db, name="Bia", email=f"STRASSE.{tag}@EXAMPLE.COM", role="pilot")
    assert caught.value.constraint == "users_email_key"
    assert await users.get_user_by_email(db, f"STRAẞE.{tag}@example.com") == street
    # One form for composed and decomposed accents (NFC), in any case.
    accent = await users.create_user(
        db, name="Ção", email=f"C\u0327a\u0303o.{tag}@example.com", role="pilot"
    )
    assert accent.email == f"ção.{tag}@example.com"
    assert await users.get_user_by_email(db, f" ÇÃO.{tag}@example.com ") == accent
    assert users.fold_email(" ÇÃO@X.COM ") == users.fold_email("c\u0327a\u0303o@x.com")
    # Domain names keep ß apart from ss (IDNA): only lowercased there.
    assert users.fold_email("STRAẞE@STRAẞE.DE") == "strasse@straße.de"


async def test_update_preferences_merges_as_json_merge_patch(db: Database) -> None:
    user = await users.create_user(
        db,
        name="Ana",
        email=email(),
        role="copilot",
        preferences={"tema": "escuro", "unidades": {"altitude": "ft", "velocidade": "kt"}, "x": 1},
    )
    updated = await users.update_preferences(
        db,
        user.user_id,
        {"unidades": {"altitude": "m", "velocidade": None}, "x": None, "novo": [1]},
    )
    assert updated.preferences == {"tema": "escuro", "unidades": {"altitude": "m"}, "novo": [1]}
    assert updated == user.model_copy(update={"preferences": updated.preferences})
    assert await users.get_user(db, user.user_id) == updated
    assert (await users.update_preferences(db, user.user_id, {})).preferences == updated.preferences


async def test_update_preferences_replaces_non_object_values(db: Database) -> None:
    user = await users.create_user(
        db, name="Ana", email=email(), role="pilot", preferences={"a": [1, 2], "b": "x"}
    )
    updated = await users.update_preferences(db, user.user_id, {"a": {"k": 1}, "b": {"c": None}})
    assert updated.preferences == {"a": {"k": 1}, "b": {}}


async def test_update_preferences_of_missing_user_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await users.update_preferences(db, uuid.uuid4(), {"a": 1})


@pytest.mark.parametrize("changes", [[1, 2], "x", None, {"a": float("nan")}, {1: "x"}])
async def test_update_preferences_rejects_non_objects(db: Database, changes: object) -> None:
    user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    with pytest.raises(InvalidInput, match="changes"):
        # wrong types on purpose: the refusal is what is tested
        await users.update_preferences(db, user.user_id, changes)  # type: ignore[arg-type]
    assert await users.get_user(db, user.user_id) == user


async def test_list_users_filters_by_role_and_licence(db: Database) -> None:
    code = licence()
    pilot = await users.create_user(
        db, name="P", email=email(), role="pilot", licenses=[code, "PP"]
    )
    mech = await users.create_user(db, name="M", email=email(), role="mechanic", licenses=[code])
    await users.create_user(db, name="O", email=email(), role="pilot", licenses=["PP"])

    page = await users.list_users(db, license=code.lower())
    assert page.items == [pilot, mech]
    assert page.next_cursor is None
    assert (await users.list_users(db, license=code, role="mechanic")).items == [mech]
    assert (await users.list_users(db, license=code, role=UserRole.ADMIN)).items == []
    pilots = await users.list_users(db, role="pilot", limit=500)
    assert all(u.role is UserRole.PILOT for u in pilots.items)


async def test_list_users_pages_by_keyset_without_gaps_or_duplicates(db: Database) -> None:
    code = licence()
    created = [
        await users.create_user(
            db, name=f"U{i}", email=email(), role="student_pilot", licenses=[code]
        )
        for i in range(7)
    ]
    seen: list[User] = []
    cursor = None
    sizes = []
    while True:
        page = await users.list_users(db, license=code, limit=3, after=cursor)
        seen.extend(page.items)
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == created


async def test_list_users_exact_last_page_has_no_cursor(db: Database) -> None:
    code = licence()
    for i in range(2):
        await users.create_user(db, name=f"U{i}", email=email(), role="pilot", licenses=[code])
    page = await users.list_users(db, license=code, limit=2)
    assert len(page.items) == 2
    assert page.next_cursor is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": True},
        {"limit": "10"},
        {"after": "garbage"},
        {"after": "W10"},
        {"role": "captain"},
        {"license": "not a code!"},
    ],
)
async def test_list_users_rejects_bad_arguments(db: Database, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        # wrong types on purpose: the refusal is what is tested
        await users.list_users(db, **kwargs)  # type: ignore[arg-type]


async def test_touch_last_active_sets_now(db: Database) -> None:
    user = await users.create_user(db, name="Ana", email=email(), role="pilot")
    await users.touch_last_active(db, user.user_id)
    touched = await users.get_user(db, user.user_id)
    assert touched is not None
    assert touched.last_active is not None
    assert touched.last_active >= user.created_at
    with pytest.raises(NotFound):
        await users.touch_last_active(db, uuid.uuid4())


VALID = {"name": "Ana", "role": "pilot"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "   "),
        ("name", " Ana"),
        ("name", "Ana\n"),
        ("experience_level", "comercial "),
        ("licenses", [" PP"]),
        ("name", "x" * 201),
        ("name", "Ana\x00"),
        ("name", 42),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("email", "two@@example.com"),
        ("email", "spaces in@example.com"),
        ("email", "a" * 250 + "@example.com"),
        ("email", "nul\x00@example.com"),
        ("role", "captain"),
        ("role", None),
        ("licenses", ["ok", "bad code"]),
        ("licenses", ["X" * 21]),
        ("licenses", "PP"),
        ("licenses", [f"L{i}" for i in range(51)]),
        ("experience_level", "x" * 51),
        ("experience_level", "\x00"),
        ("preferences", ["not", "an", "object"]),
        ("preferences", {"k": "\x00"}),
        ("preferences", {"\x00": 1}),
        ("preferences", {"k": math.nan}),
        ("preferences", {"k": math.inf}),
        ("preferences", {"k": 2**64}),
        ("preferences", {"k": {1, 2}}),
        ("preferences", {"k": "x" * 1_000_001}),
        ("preferences", {"k": "\ud800"}),
        ("preferences", {"\udfff": 1}),
        ("name", "Ana \ud800"),
        ("name", b"Bytes"),
        ("email", "\u0130" * 200 + "@example.com"),
        ("licenses", ["\ufb01"]),
        ("licenses", {"PP", "PC"}),
    ],
)
async def test_create_user_rejects_bad_input_and_writes_nothing(
    db: Database, field: str, value: object
) -> None:
    code = licence()  # every valid attempt carries it: a listing by it finds what was written
    kwargs: dict[str, object] = {**VALID, "email": email(), "licenses": [code], field: value}
    with pytest.raises(InvalidInput, match=field):
        # wrong types on purpose: the refusal is what is tested
        await users.create_user(db, **kwargs)  # type: ignore[arg-type]
    assert (await users.list_users(db, license=code)).items == []
    if field != "email":
        assert await users.get_user_by_email(db, str(kwargs["email"])) is None


async def test_deeply_nested_preferences_are_rejected(db: Database) -> None:
    deep: dict[str, object] = {}
    for _ in range(70):
        deep = {"k": deep}
    with pytest.raises(InvalidInput, match="nested deeper"):
        await users.create_user(db, name="Ana", email=email(), role="pilot", preferences=deep)


@pytest.mark.parametrize("bad_id", ["not-a-uuid", 123, None])
async def test_ids_must_be_uuids(db: Database, bad_id: object) -> None:
    # wrong types on purpose: the refusal is what is tested
    with pytest.raises(InvalidInput, match="user_id"):
        await users.get_user(db, bad_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="user_id"):
        await users.touch_last_active(db, bad_id)  # type: ignore[arg-type]


async def test_get_user_by_email_rejects_malformed_email(db: Database) -> None:
    with pytest.raises(InvalidInput, match="email"):
        await users.get_user_by_email(db, "nope")


async def test_concurrent_creates_with_one_email_store_exactly_one(db: Database) -> None:
    address = email()
    results = await asyncio.gather(
        *(users.create_user(db, name=f"U{i}", email=address, role="pilot") for i in range(10)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, User)]
    assert len(created) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if not isinstance(r, User))
    assert await users.get_user_by_email(db, address) == created[0]
