"""Faults caused for real: a statement stuck on a lock past its timeout, a saturated pool,
and two processes writing one SQLite file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

import stratus_sql
from stratus_sql.queries import users


def email() -> str:
    return f"f.{uuid.uuid4().hex[:12]}@example.com"


async def test_a_write_past_its_timeout_is_commit_unknown_and_the_pool_recovers(
    pg_url: str,
) -> None:
    url = pg_url
    settings = stratus_sql.Settings.load(command_timeout=0.5, pool_min_size=1, pool_max_size=1)
    async with await stratus_sql.connect(url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        blocker = await asyncpg.connect(url)
        try:
            locked = blocker.transaction()
            await locked.start()
            await blocker.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", user.user_id)
            started = time.monotonic()
            # A write cut off by the timeout may or may not have been applied.
            with pytest.raises(stratus_sql.CommitUnknown) as raised:
                await users.update_preferences(db, user.user_id, {"a": 1})
            assert isinstance(raised.value.__cause__, stratus_sql.QueryTimeout)
            assert time.monotonic() - started < 3
            await locked.rollback()
        finally:
            await blocker.close()
        # The only pooled connection is usable again.
        assert (await users.update_preferences(db, user.user_id, {"a": 2})).preferences == {"a": 2}


async def test_five_hundred_concurrent_calls_on_a_pool_of_ten_all_complete(
    pg_url: str,
) -> None:
    settings = stratus_sql.Settings.load(pool_min_size=2, pool_max_size=10)
    async with await stratus_sql.connect(pg_url, settings=settings) as db:
        user = await users.create_user(db, name="Ana", email=email(), role="pilot")
        results = await asyncio.gather(*(users.get_user(db, user.user_id) for _ in range(500)))
    assert results == [user] * 500


def test_two_processes_writing_one_sqlite_file_never_see_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    stratus_sql.apply_migrations(url)
    writer = textwrap.dedent(
        f"""
        import asyncio, sys, uuid
        import stratus_sql
        from stratus_sql.queries import users

        async def main():
            async with await stratus_sql.connect({url!r}) as db:
                for i in range(500):
                    async with db.transaction() as tx:
                        await users.create_user(
                            tx, name="P", email=f"{{uuid.uuid4().hex}}@x.com", role="pilot"
                        )
        asyncio.run(main())
        """
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", writer], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert not any("locked" in e for e in errors)

    async def total() -> int:
        async with await stratus_sql.connect(url) as db:
            seen, cursor = 0, None
            while True:
                page = await users.list_users(db, limit=500, after=cursor)
                seen += len(page.items)
                if page.next_cursor is None:
                    return seen
                cursor = page.next_cursor

    assert asyncio.run(total()) == 1000
