"""`make demo`: migrate the configured database (the embedded ./stratus.db by default), create
a user, read the user back, and print it."""

from __future__ import annotations

import asyncio
import sys

from stratus_sql.database import connect
from stratus_sql.errors import StratusError
from stratus_sql.migrations import apply_migrations
from stratus_sql.queries import users
from stratus_sql.records import User

EMAIL = "joao.silva@example.com"


def _describe(user: User) -> str:
    rows = [
        ("id", str(user.user_id)),
        ("nome", user.name),
        ("email", user.email),
        ("função", user.role.value),
        ("licenças", ", ".join(user.licenses) or "-"),
        ("experiência", user.experience_level or "-"),
        ("preferências", ", ".join(f"{k}={v}" for k, v in user.preferences.items()) or "-"),
        ("criado em", user.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)


async def _demo() -> None:
    async with await connect() as db:
        print(f"database: {db.dialect} ({db.settings.database_url})")
        user = await users.get_user_by_email(db, EMAIL)
        if user is None:
            user = await users.create_user(
                db,
                name="João Silva",
                email=EMAIL,
                role="pilot",
                licenses=["PP", "PC", "IFR"],
                experience_level="comercial",
                preferences={"idioma": "pt-BR", "aeródromo_base": "SBGR"},
            )
            print("created the pilot João Silva")
        else:
            print("João Silva was already there")
        again = await users.get_user(db, user.user_id)
        if again != user:
            raise SystemExit("read back a different user")
        print("read back:")
        print(_describe(again))


def main() -> int:
    try:
        applied = apply_migrations()
        print(f"migrations: {', '.join(applied) if applied else 'up to date'}")
        asyncio.run(_demo())
    except StratusError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
