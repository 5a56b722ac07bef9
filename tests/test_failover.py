"""A primary failover and a planned switchover under an open-loop load, on a pg_auto_failover
formation of the test's own (tests/formation.py).

The load runs without a pause through the fault. The layer is given both nodes in one URL
(`target_session_attrs=read-write`) and reads on `prefer-standby`; nothing is restarted.
Afterwards every acknowledged write is stored exactly once, every message_count equals its
rows, every failed request raised a StratusError (CommitUnknown for a write cut off in
flight), and the pool, the replica routing and the memory cache's listener are on the new
nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import pytest

import stratus_sql
from bench.workload import WRITES, Ledger, audit, make_users, open_loop
from stratus_sql.queries import memory
from tests.formation import DEMOTE_MS, NODES, UNHEALTHY_MS, Formation, formation

DATABASE = "stratus"
RATE = 40.0  # requests a second, open loop
# From the kill to the first acknowledged write: the monitor notices the node within the
# unhealthy timeout plus a health check (1 s period, 1 s timeout), waits the demote timeout,
# and the keepers take three transitions (prepare_promotion, stop_replication, wait_primary)
# at about a second each; the layer's next connection then finds the new primary at once.
RECOVERY_BOUND = (UNHEALTHY_MS + DEMOTE_MS) / 1000 + 2 + 3 + 2  # 15 s; measured about 8 s


@pytest.fixture(scope="module")
def ha() -> Iterator[Formation]:
    with formation() as found:
        asyncio.run(_create_database(found))
        stratus_sql.apply_migrations(found.url(DATABASE))  # yoyo, through the multi-host URL
        yield found


async def _create_database(found: Formation) -> None:
    conn = await asyncpg.connect(found.url())
    try:
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()


@pytest.fixture
def healthy(ha: Formation) -> Formation:
    """The formation with a primary and a secondary: a node killed by an earlier test is
    started again and rejoins as the secondary."""
    for name in NODES:
        if name not in ha.keepers:
            ha.start_keeper(name)
    ha.wait_healthy()
    return ha


def settings(found: Formation) -> stratus_sql.Settings:
    return stratus_sql.Settings.load(
        database_url=found.url(DATABASE),
        replica_url=found.url(DATABASE, attrs="prefer-standby"),
        connect_timeout=2,
        pool_timeout=5,
        command_timeout=5,
    )


async def listening_on(found: Formation, node: str) -> int:
    """The memory caches' LISTEN sessions on a node."""
    conn = await asyncpg.connect(found.node_url(node, DATABASE))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        )
    finally:
        await conn.close()
    return count


def promoted(found: Formation, old: str) -> bool:
    """Whether the node other than `old` is the primary now, and settled."""
    (other,) = [n for n in NODES if n != old]
    reported, goal = found.states()[other]
    return reported == goal and reported in ("primary", "wait_primary")


async def ride_through(found: Formation, fault: str) -> tuple[Ledger, float, float]:
    """One open loop from 1 s before the fault until 3 s after the formation settled again;
    then the checks every fault shares. Returns the ledger, the fault's moment and the
    moment the formation had settled."""
    db = await stratus_sql.connect(settings=settings(found))
    ledger = Ledger()
    async with db:
        people = await make_users(db, 8, f"{fault}.{time.monotonic_ns()}")
        who = people[0].user_id
        await memory.store_memory(db, user_id=who, key="antes", value="pouso antes da falha",
                                  memory_type="critical", importance_score=1)  # fmt: skip
        stop = asyncio.Event()
        load = asyncio.create_task(
            open_loop(db, ledger, people, rate=RATE, seconds=120, mix=WRITES, seed=1, stop=stop)
        )
        await asyncio.sleep(1)
        old = await asyncio.to_thread(found.primary)
        struck = time.monotonic()
        switching = None
        if fault == "kill":
            await asyncio.to_thread(found.kill, old)
        else:
            switching = found.switchover()
        deadline = struck + 60
        while not (
            await asyncio.to_thread(promoted, found, old)
            and (switching is None or switching.poll() is not None)
        ):
            if time.monotonic() > deadline:
                stop.set()
                await load
                pytest.fail(f"no new primary within 60 s: {found.states()}\n{found.logs()}")
            await asyncio.sleep(0.2)
        settled = time.monotonic()
        if switching is not None:
            assert switching.returncode == 0, found.logs()
        await asyncio.sleep(3)
        stop.set()
        await load
        new = found.primary()
        assert new != old

        untyped = [o for o in ledger.outcomes if o.error and o.error.startswith("untyped")]
        assert untyped == []
        problems = await audit(found.node_url(new, DATABASE), ledger, people)
        assert problems == []
        # Every write meant to start a second after the formation settled succeeded: the
        # pool is on the new primary.
        late = [o for o in ledger.outcomes if o.intended > settled + 1]
        assert late, "no request after the formation settled"
        assert [o for o in late if o.error] == []
        # The memory cache listens again, on the new primary, and sees its writes.
        cache = db.memory_cache
        assert cache is not None
        assert cache.active
        assert await listening_on(found, new) == 1
        await memory.store_memory(db, user_id=who, key="após", value="1",
                                  memory_type="critical", importance_score=1)  # fmt: skip
        assert (await memory.get_memory(db, who, "após")) is not None
        # Reads on prefer-standby still answer, with what was written before the fault.
        hits = await memory.search_memories(db, who, "falha")
        assert "antes" in [hit.entry.key for hit in hits]
    return ledger, struck, settled


async def test_a_planned_switchover_is_ridden_through_with_nothing_lost(
    healthy: Formation,
) -> None:
    ledger, struck, settled = await ride_through(healthy, "switchover")
    gap = ledger.longest_gap(struck, settled, list(WRITES))
    print(f"\nno write acknowledged for {gap:.2f} s during the switchover; {dict(ledger.errors)}")
    recovery = gap
    assert recovery < RECOVERY_BOUND


async def test_a_killed_primary_is_ridden_through_with_nothing_lost(healthy: Formation) -> None:
    ledger, struck, _ = await ride_through(healthy, "kill")
    recovery = ledger.first_ack_after(struck, list(WRITES))
    assert recovery is not None
    print(f"\nrecovery after kill -9 of the primary: {recovery:.2f} s; {dict(ledger.errors)}")
    assert recovery < RECOVERY_BOUND
