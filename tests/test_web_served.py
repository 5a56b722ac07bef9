"""The dashboard app served for real by `stratus-sql serve`: fuzzed from its own OpenAPI
document on every leg, and answering with the last good series, marked stale, once its
PostgreSQL server is stopped."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

import stratus_sql
from stratus_sql import Database
from stratus_sql.dashboard import generate_data
from stratus_sql.queries import api_keys
from stratus_sql.web.auth import COOKIE
from tests.servers import Cluster
from tests.webapp import Person, person, served


@pytest.fixture
async def people(db: Database) -> tuple[Person, Person]:
    return await person(db, samples=40), await person(db, "admin", samples=5)


def test_no_request_is_ever_a_server_error(
    database_url: str, people: tuple[Person, Person]
) -> None:
    """Requests generated from the app's own OpenAPI document, valid and invalid (sign-in
    forms included), with a pilot's key, an admin's, none, and a pilot's session cookie:
    each answered as documented, and never with a 5xx."""
    pilot, admin = people
    config = SchemathesisConfig()
    config.projects.default.generation.update(modes=list(GenerationMode))
    with served(database_url) as base:
        schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json", config=config)
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert len(operations) == 12
        # What the fuzzing rarely reaches: a dashboard that exists, the vendored charts.
        series = httpx.get(
            f"{base}/api/dashboards/{pilot.board.dashboard_id}/series",
            headers={"authorization": f"Bearer {pilot.key}"},
        )
        assert series.status_code == 200
        assert sum(b["samples"] for b in series.json()["buckets"]) > 0
        assert httpx.get(f"{base}/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
        assert "server" not in series.headers
        signed_in = httpx.post(f"{base}/sign-in", data={"key": pilot.key})
        session = {COOKIE: signed_in.cookies[COOKIE]}
        for operation in operations:

            @hypothesis.given(case=operation.as_strategy())
            @hypothesis.settings(
                max_examples=5,
                deadline=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                database=None,
            )
            def call(case: Case) -> None:
                for key in (pilot.key, admin.key, None):
                    headers = {"authorization": f"Bearer {key}"} if key else {}
                    case.call_and_validate(headers=headers)
                case.call_and_validate(cookies=session)

            call()


@pytest.fixture
async def on_cluster(stoppable_cluster: Cluster) -> AsyncIterator[Database]:
    # No memory cache: its listener would try to reconnect while the server is stopped.
    settings = stratus_sql.Settings.load(memory_cache_size=0)
    async with await stratus_sql.connect(stoppable_cluster.url, settings=settings) as db:
        yield db


def as_(owner: Person) -> dict[str, str]:
    return {"authorization": f"Bearer {owner.key}"}


async def test_a_stopped_database_shows_the_last_good_series_as_stale(
    stoppable_cluster: Cluster, on_cluster: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pilot = await person(on_cluster, samples=20)
    neighbour, gone = await person(on_cluster, samples=5), await person(on_cluster, samples=5)
    before = await generate_data("24h", db=on_cluster, dashboard_id=pilot.board.dashboard_id)
    monkeypatch.setenv("DB_RETRY_ATTEMPTS", "1")
    series = f"/api/dashboards/{pilot.board.dashboard_id}/series"
    never_seen = f"sk_{uuid.uuid4().hex}_{secrets.token_urlsafe(32)}"  # well formed
    bearer = {"authorization": f"Bearer {pilot.key}"}
    with served(stoppable_cluster.url) as base:
        async with httpx.AsyncClient(base_url=base, headers=bearer, timeout=30) as http:
            good = await http.get(series)
            assert good.status_code == 200
            assert good.json()["stale"] is False
            for other in (neighbour, gone):  # each read their own series once
                own = f"/api/dashboards/{other.board.dashboard_id}/series"
                assert (await http.get(own, headers=as_(other))).status_code == 200
            await api_keys.revoke_api_key(on_cluster, gone.key_id)
            assert (await http.get("/api/dashboards", headers=as_(gone))).status_code == 401
            await asyncio.to_thread(stoppable_cluster.pg_ctl, "stop", "-m", "fast")
            try:
                await asyncio.sleep(0.2)
                stale = await http.get(series)
                kept = await generate_data(
                    "24h", db=on_cluster, dashboard_id=pilot.board.dashboard_id
                )
                page = await http.get(f"/dashboards/{pilot.board.dashboard_id}")
                other_period = await http.get(series, params={"period": "7d"})
                health = await http.get("/api/health")
                stranger = await http.get(
                    "/api/dashboards", headers={"authorization": f"Bearer {never_seen}"}
                )
                # Known from before, but never shown the pilot's board: nothing to give.
                neighbours = await http.get(series, headers=as_(neighbour))
                # Revoked before the outage: forgotten then, not recognised now.
                revoked = await http.get(
                    f"/api/dashboards/{gone.board.dashboard_id}/series", headers=as_(gone)
                )
                with served(stoppable_cluster.url) as started_during:  # starts all the same
                    async with httpx.AsyncClient(base_url=started_during) as late:
                        late_health = await late.get("/api/health")
                        late_series = await late.get(series, headers=bearer)
            finally:
                # Closed while the server is down: its pool has nothing left to wait for.
                await on_cluster.close()
                await asyncio.to_thread(stoppable_cluster.pg_ctl, "start")
            fresh = await http.get(series)
    assert stale.status_code == 200
    body = stale.json()
    assert body["stale"] is True
    assert body["age_seconds"] > 0
    assert body["buckets"] == good.json()["buckets"]  # the same buckets, never invented
    assert page.status_code == 200
    assert '"stale":true' in page.text
    # Nothing kept for a period never read, a key never seen: unavailable, not made up.
    assert other_period.status_code == 503
    assert other_period.json() == {"detail": "banco de dados indisponível"}
    assert health.status_code == 503
    assert health.json()["reachable"] is False
    assert stranger.status_code == 503
    assert neighbours.status_code == 503
    assert revoked.status_code == 503
    assert late_health.status_code == 503
    assert late_series.status_code == 503
    assert kept["stale"] is True
    assert kept["age_seconds"] > 0
    assert {**kept, "stale": False, "age_seconds": 0} == before
    assert fresh.status_code == 200
    assert fresh.json()["stale"] is False


async def test_several_workers_share_sessions(sqlite_url: str) -> None:
    """`--workers 2` starts and answers a session's 40 requests on connections of their own,
    which the kernel spreads over the two processes. Which process answered cannot be told
    from outside; that one process accepts another's sessions is shown in process by
    test_apps_built_from_one_environment_accept_each_others_sessions."""
    async with await stratus_sql.connect(sqlite_url) as db:
        pilot = await person(db, samples=3)
    with served(sqlite_url, 0.0, "--workers", "2") as base:
        async with httpx.AsyncClient(base_url=base) as http:
            signed = await http.post("/sign-in", data={"key": pilot.key})
            assert signed.status_code == 303
            answers = await asyncio.gather(*(http.get("/api/dashboards") for _ in range(40)))
    assert {a.status_code for a in answers} == {200}
