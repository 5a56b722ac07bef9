"""The dashboard app's API, sign-in and pages, in process, on every leg."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import get_args

import httpx
import orjson
import pytest

import stratus_sql
from stratus_sql import Database, DatabaseUnavailable, NotFound, UsageError
from stratus_sql.queries import api_keys, dashboards, metrics
from stratus_sql.records import MetricBucket
from stratus_sql.web import create_app
from stratus_sql.web.app import app_from_environment
from stratus_sql.web.auth import COOKIE, Caller, Sessions
from stratus_sql.web.state import AppState, Period
from tests.webapp import client, person, sample

SERIES_FIELDS = tuple(MetricBucket.model_fields)[1:]  # all but bucket_start


def same_series(got: list[dict], expected: list) -> None:
    """The API's buckets equal the layer's, read a moment apart (the same now, to the
    second: the buckets' edges move with it)."""
    assert len(got) == len(expected)
    for bucket, want in zip(got, expected, strict=True):
        start = datetime.fromisoformat(bucket["bucket_start"])
        assert abs(start - want.bucket_start) < timedelta(seconds=60)
        for field in SERIES_FIELDS:
            assert bucket[field] == pytest.approx(getattr(want, field)), field


async def test_no_key_or_a_bad_one_is_401(db: Database) -> None:
    owner = await person(db)
    revoked = await api_keys.create_api_key(db, user_id=owner.user.user_id)
    await api_keys.revoke_api_key(db, revoked.key_id)
    paths = ("/api/dashboards", f"/api/dashboards/{owner.board.dashboard_id}/series")
    for key in (None, "sk_nonsense", owner.key[:-1] + "x", revoked.key):
        async with client(db, key) as http:
            for path in paths:
                response = await http.get(path)
                assert response.status_code == 401, (key, path)
                assert response.headers["www-authenticate"] == "Bearer"
                assert "API key" in response.json()["detail"]
    async with client(db) as http:
        response = await http.get(paths[0], headers={"authorization": "Basic " + owner.key})
        assert response.status_code == 401


async def test_a_user_lists_only_their_dashboards(db: Database) -> None:
    owner, other = await person(db), await person(db)
    second = await dashboards.create_dashboard(db, user_id=owner.user.user_id, name="Outro")
    async with client(db, owner.key) as http:
        response = await http.get("/api/dashboards")
    assert response.status_code == 200
    listed = response.json()
    assert {d["dashboard_id"] for d in listed} == {
        str(owner.board.dashboard_id),
        str(second.dashboard_id),
    }
    assert str(other.board.dashboard_id) not in response.text
    expected = await dashboards.list_dashboards(db, owner.user.user_id)
    assert listed == [orjson.loads(b.model_dump_json()) for b in expected]


@pytest.mark.parametrize("period", ["24h", "7d", "30d"])
async def test_the_series_is_dashboard_series(db: Database, period: str) -> None:
    owner = await person(db, samples=200)
    async with client(db, owner.key) as http:
        response = await http.get(
            f"/api/dashboards/{owner.board.dashboard_id}/series", params={"period": period}
        )
    expected = await metrics.dashboard_series(
        db, period=period, dashboard_id=owner.board.dashboard_id
    )
    assert response.status_code == 200
    body = response.json()
    assert body["stale"] is False
    assert body["age_seconds"] == 0
    same_series(body["buckets"], expected)
    assert sum(b["samples"] for b in body["buckets"]) > 0


async def test_the_csv_holds_the_same_buckets(db: Database) -> None:
    owner = await person(db, samples=30)
    async with client(db, owner.key) as http:
        response = await http.get(
            f"/api/dashboards/{owner.board.dashboard_id}/series.csv", params={"period": "24h"}
        )
    expected = await metrics.dashboard_series(db, dashboard_id=owner.board.dashboard_id)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["x-stale"] == "false"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 24
    same_series(
        [
            {k: (None if v == "" else (int(v) if k == "samples" else v)) for k, v in row.items()}
            | {
                f: (None if row[f] == "" else float(row[f]))
                for f in SERIES_FIELDS
                if f != "samples"
            }
            for row in rows
        ],
        expected,
    )
    assert any(row["ia_efficiency"] == "" for row in rows)  # the empty buckets


async def test_another_users_or_an_unknown_dashboard_is_404(db: Database) -> None:
    owner, other = await person(db, samples=3), await person(db)
    unknown = "0190b3c4-0000-7000-8000-000000000000"
    async with client(db, other.key) as http:
        for board in (owner.board.dashboard_id, unknown):
            for path in (
                f"/api/dashboards/{board}/series",
                f"/api/dashboards/{board}/series.csv",
                f"/dashboards/{board}",
            ):
                response = await http.get(path)
                assert response.status_code == 404, path
                assert "Ana" not in response.text


async def test_a_bad_parameter_is_422_naming_it(db: Database) -> None:
    owner = await person(db)
    async with client(db, owner.key) as http:
        bad_period = await http.get(
            f"/api/dashboards/{owner.board.dashboard_id}/series", params={"period": "1y"}
        )
        bad_id = await http.get("/api/dashboards/not-a-uuid/series")
    assert bad_period.status_code == 422
    assert bad_period.json()["detail"][0]["loc"] == ["query", "period"]
    assert bad_id.status_code == 422
    assert bad_id.json()["detail"][0]["loc"] == ["path", "dashboard_id"]


@pytest.fixture
async def on_sqlite(sqlite_url: str) -> AsyncIterator[Database]:
    """For what the app decides on its own, whatever the backend (cookies, forms, headers):
    the sqlite leg's database, so it runs once."""
    async with await stratus_sql.connect(sqlite_url) as db:
        yield db


@pytest.fixture
async def alone(blank_url: str) -> AsyncIterator[Database]:
    """A database of the test's own: the organisation's series holds only its samples."""
    stratus_sql.apply_migrations(blank_url)
    async with await stratus_sql.connect(blank_url) as db:
        yield db


async def test_an_admin_sees_every_dashboard_and_the_organisation(alone: Database) -> None:
    db = alone
    admin, pilot = await person(db, "admin"), await person(db, samples=50)
    async with client(db, admin.key) as http:
        listed = (await http.get("/api/dashboards")).json()
        theirs = await http.get(f"/api/dashboards/{pilot.board.dashboard_id}/series")
        organisation = await http.get("/api/organisation/series", params={"period": "7d"})
        organisation_csv = await http.get("/api/organisation/series.csv")
        page = await http.get("/organisation")
    ids = {d["dashboard_id"] for d in listed}
    assert {str(admin.board.dashboard_id), str(pilot.board.dashboard_id)} <= ids
    assert theirs.status_code == 200
    same_series(
        theirs.json()["buckets"],
        await metrics.dashboard_series(db, dashboard_id=pilot.board.dashboard_id),
    )
    assert organisation.status_code == 200
    same_series(organisation.json()["buckets"], await metrics.dashboard_series(db, period="7d"))
    assert organisation_csv.status_code == 200
    assert page.status_code == 200
    async with client(db, pilot.key) as http:
        for path in ("/api/organisation/series", "/api/organisation/series.csv"):
            refused = await http.get(path)
            assert refused.status_code == 403
            assert refused.json()["detail"] == "only an admin may read the organisation's series"
        assert (await http.get("/organisation")).status_code == 403


async def test_health_answers_without_a_key(db: Database) -> None:
    async with client(db) as http:
        response = await http.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["healthy"] is True
    assert body["reachable"] is True
    assert body["pending_migrations"] == 0
    assert body["latency_ms"] >= 0


async def test_every_response_forbids_other_hosts_and_caching(on_sqlite: Database) -> None:
    db = on_sqlite
    async with client(db) as http:
        for path in ("/api/health", "/sign-in", "/api/dashboards", "/static/style.css"):
            response = await http.get(path)
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "no-store"


def cookie_attributes(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")]
    return {p.partition("=")[0].lower(): p.partition("=")[2] for p in parts[1:]}


@pytest.mark.parametrize(
    ("base", "secure"),
    [("http://127.0.0.1", False), ("https://dash.example", True), ("http://dash.example", True)],
)
async def test_sign_in_sets_a_strict_signed_session_cookie(
    on_sqlite: Database, base: str, secure: bool
) -> None:
    db = on_sqlite
    owner = await person(db, samples=5)
    async with client(db, base=base) as http:
        assert (await http.get("/dashboards")).status_code == 303
        response = await http.post("/sign-in", data={"key": owner.key})
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboards"
        header = response.headers["set-cookie"]
        assert header.startswith(f"{COOKIE}=v1.")
        assert owner.key not in header  # the session names the key, it is not the key
        attributes = cookie_attributes(header)
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "strict"
        assert attributes["path"] == "/"
        assert attributes["max-age"] == str(8 * 3600)
        assert ("secure" in attributes) is secure
    if secure and base.startswith("http:"):
        return  # a Secure cookie is not sent back over plain HTTP: nothing more to see
    async with client(db, base=base) as http:
        await http.post("/sign-in", data={"key": owner.key})
        listing = await http.get("/dashboards")
        assert listing.status_code == 200
        assert html.escape(owner.board.name) in listing.text
        page = await http.get(f"/dashboards/{owner.board.dashboard_id}", params={"period": "7d"})
        assert page.status_code == 200
        api = await http.get(f"/api/dashboards/{owner.board.dashboard_id}/series")
        assert api.status_code == 200
        out = await http.post("/sign-out")
        assert out.status_code == 303
        assert out.headers["location"] == "/sign-in"
        assert (await http.get("/api/dashboards")).status_code == 401
        assert (await http.get("/dashboards")).status_code == 303


async def test_a_forged_or_expired_session_is_refused(on_sqlite: Database) -> None:
    db = on_sqlite
    owner = await person(db)
    async with client(db) as http:
        await http.post("/sign-in", data={"key": owner.key})
        token = http.cookies[COOKIE]
        for forged in (
            token[:-1] + ("A" if token[-1] != "A" else "B"),  # another signature
            token.replace(token.split(".")[2], str(int(token.split(".")[2]) + 3600)),  # longer
            "v1." + token.split(".", 2)[2],  # no key id
            owner.key,  # the key itself is no session
        ):
            http.cookies.set(COOKIE, forged)
            assert (await http.get("/api/dashboards")).status_code == 401, forged
    sessions = Sessions(b"s" * 32, lifetime=-1)
    assert sessions.key_id(sessions.issue(owner.board.dashboard_id)) is None  # expired
    fresh = Sessions(b"s" * 32)
    assert fresh.key_id(fresh.issue(owner.board.dashboard_id)) == owner.board.dashboard_id
    assert Sessions(b"t" * 32).key_id(fresh.issue(owner.board.dashboard_id)) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "http://127.0.0.1:9999"},
        {"origin": "null"},
    ],
)
async def test_another_site_can_neither_sign_in_nor_out(on_sqlite: Database, headers: dict) -> None:
    db = on_sqlite
    owner = await person(db)
    async with client(db) as http:
        refused = await http.post("/sign-in", data={"key": owner.key}, headers=headers)
        assert refused.status_code == 403
        assert "set-cookie" not in refused.headers
        signed = await http.post(
            "/sign-in",
            data={"key": owner.key},
            headers={"origin": "http://127.0.0.1", "sec-fetch-site": "same-origin"},
        )
        assert signed.status_code == 303
        out = await http.post("/sign-out", headers=headers)
        assert out.status_code == 403
        assert (await http.get("/api/dashboards")).status_code == 200


async def test_a_wrong_key_at_sign_in_is_refused_and_sets_no_cookie(db: Database) -> None:
    owner = await person(db)
    await api_keys.revoke_api_key(
        db, (await api_keys.list_api_keys(db, owner.user.user_id))[0].key_id
    )
    async with client(db) as http:
        for form in ({"key": owner.key}, {"key": ""}, {}, {"key": "x" * 5000}):
            response = await http.post("/sign-in", data=form)
            assert response.status_code == 401
            assert "set-cookie" not in response.headers
            assert "Chave inválida ou revogada." in response.text


async def test_a_revoked_key_stops_at_its_next_request(db: Database) -> None:
    owner = await person(db)
    async with client(db) as http:
        await http.post("/sign-in", data={"key": owner.key})
        assert (await http.get("/api/dashboards")).status_code == 200
        for key in await api_keys.list_api_keys(db, owner.user.user_id):
            await api_keys.revoke_api_key(db, key.key_id)
        assert (await http.get("/api/dashboards")).status_code == 401
        assert (await http.get("/dashboards")).status_code == 303


async def test_the_page_embeds_the_series_it_draws(db: Database) -> None:
    owner = await person(db, samples=60)
    async with client(db, owner.key) as http:
        page = await http.get(f"/dashboards/{owner.board.dashboard_id}", params={"period": "24h"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    block = re.search(
        r'<script type="application/json" id="series">(.*?)</script>', page.text, re.S
    )
    assert block is not None
    embedded = orjson.loads(block.group(1))
    same_series(
        embedded["buckets"],
        await metrics.dashboard_series(db, dashboard_id=owner.board.dashboard_id),
    )
    assert f"/api/dashboards/{owner.board.dashboard_id}/series.csv?period=24h" in page.text
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith(("/", "?")), src  # nothing from another host


async def test_a_caller_known_only_from_memory_gets_only_what_was_kept(db: Database) -> None:
    """While the database could not confirm a key, its caller is answered from what was kept
    for them, stale, and never with a fresh read, even when the database answers again."""
    owner, other = await person(db, samples=20), await person(db, samples=5)
    state = AppState(None, db)
    fresh = Caller(owner.user)
    board = await state.board(fresh, owner.board.dashboard_id)
    shown = await state.series(fresh, board, "24h")
    assert shown.stale is False
    await metrics.record_metrics(db, [sample(owner, minutes=5)])  # after it was shown

    remembered = Caller(owner.user, remembered=True)
    assert await state.board(remembered, owner.board.dashboard_id) == board
    kept = await state.series(remembered, board, "24h")
    assert kept.stale is True
    assert kept.buckets == shown.buckets
    assert kept.age_seconds > 0
    with pytest.raises(DatabaseUnavailable):
        await state.series(remembered, board, "7d")  # never shown: nothing to give
    with pytest.raises(DatabaseUnavailable):
        await state.board(remembered, other.board.dashboard_id)  # never read by them
    with pytest.raises(DatabaseUnavailable):
        await state.dashboards_of(remembered)


def test_the_apps_periods_are_the_series_periods() -> None:
    assert get_args(Period) == tuple(metrics.PERIODS)


async def test_a_series_is_reused_for_the_seconds_asked_then_read_again(db: Database) -> None:
    owner = await person(db, samples=10)
    path = f"/api/dashboards/{owner.board.dashboard_id}/series"
    app = create_app(db=db, reuse_seconds=60)
    transport = httpx.ASGITransport(app=app)
    bearer = {"authorization": f"Bearer {owner.key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        first = (await http.get(path, headers=bearer)).json()
        await metrics.record_metrics(db, [sample(owner, minutes=5)])
        again = (await http.get(path, headers=bearer)).json()
        assert again["buckets"] == first["buckets"]  # the same read, given again
        assert again["stale"] is False
        assert 0 < again["age_seconds"] < 60
        week = (await http.get(path, params={"period": "7d"}, headers=bearer)).json()
        assert sum(b["samples"] for b in week["buckets"]) == 11  # another period: read now
        other = await person(db)  # another caller never gets it
        theirs = await http.get(path, headers={"authorization": f"Bearer {other.key}"})
        assert theirs.status_code == 404
        # A key's check is reused too: revoked now, it counts within the reuse time.
        await api_keys.revoke_api_key(db, owner.key_id)
        assert (await http.get(path, headers=bearer)).status_code == 200
    async with client(db, owner.key) as http:  # reuse_seconds=0: every request asks
        assert (await http.get(path)).status_code == 401
    owner = await person(db)
    await metrics.record_metrics(db, [sample(owner, minutes=5 + i) for i in range(11)])
    async with client(db, owner.key) as http:
        fresh = (await http.get(f"/api/dashboards/{owner.board.dashboard_id}/series")).json()
    assert sum(b["samples"] for b in fresh["buckets"]) == 11
    for bad in (-1, 61, float("nan")):
        with pytest.raises(UsageError, match="reuse_seconds"):
            create_app(db=db, reuse_seconds=bad)


async def test_viewers_arriving_together_share_one_read(db: Database) -> None:
    owner = await person(db, samples=10)
    path = f"/api/dashboards/{owner.board.dashboard_id}/series"
    transport = httpx.ASGITransport(app=create_app(db=db, reuse_seconds=60))
    bearer = {"authorization": f"Bearer {owner.key}"}

    def reads() -> int:
        return sum(stat.calls for name, stat in db.stats().items() if "dashboard" in name)

    before = reads()
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        answers = await asyncio.gather(*(http.get(path, headers=bearer) for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert len({orjson.dumps(a.json()["buckets"]) for a in answers}) == 1  # one read, shared
    assert reads() - before == 2, db.stats().keys()  # one dashboard lookup, one series read


async def test_apps_built_from_one_environment_accept_each_others_sessions(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `serve --workers N` relies on: each worker builds its app from the environment,
    and a session one signs is good in another."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DASHBOARD_SESSION_SECRET", "w" * 40)
    monkeypatch.setenv("DASHBOARD_REUSE_SECONDS", "0")
    async with await stratus_sql.connect(sqlite_url) as db:
        owner = await person(db)
    first, second = app_from_environment(), app_from_environment()
    async with (
        first.router.lifespan_context(first),
        second.router.lifespan_context(second),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=first), base_url="http://127.0.0.1"
        ) as one,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second), base_url="http://127.0.0.1"
        ) as other,
    ):
        assert (await one.post("/sign-in", data={"key": owner.key})).status_code == 303
        other.cookies.set(COOKIE, one.cookies[COOKIE])
        answer = await other.get("/api/dashboards")
    assert answer.status_code == 200
    assert [d["dashboard_id"] for d in answer.json()] == [str(owner.board.dashboard_id)]


async def test_a_cookie_of_any_characters_is_401(on_sqlite: Database) -> None:
    owner = await person(on_sqlite)
    hex_id = owner.key_id.hex
    async with client(on_sqlite) as http:
        for token in (f"v1.{hex_id}.9999999999.{'é' * 43}", f"v1.{hex_id}.1.{'ß' * 43}"):
            header = f"{COOKIE}={token}".encode("latin-1")
            answer = await http.get("/api/dashboards", headers={b"cookie": header})
            assert answer.status_code == 401, token


async def test_the_configured_session_secret_signs_the_sessions(sqlite_url: str) -> None:
    settings = stratus_sql.Settings.load(session_secret="z" * 40)
    async with (
        await stratus_sql.connect(sqlite_url, settings=settings) as one,
        await stratus_sql.connect(sqlite_url, settings=settings) as other,
    ):
        owner = await person(one)
        async with client(one) as first, client(other) as second:
            await first.post("/sign-in", data={"key": owner.key})
            second.cookies.set(COOKIE, first.cookies[COOKIE])
            assert (await second.get("/api/dashboards")).status_code == 200


async def test_a_kept_dashboard_is_not_given_to_a_caller_who_may_no_longer_read_it(
    db: Database,
) -> None:
    admin, pilot = await person(db, "admin"), await person(db, samples=3)
    state = AppState(None, db, reuse_seconds=60)
    as_admin = Caller(admin.user)
    await state.view(as_admin, pilot.board.dashboard_id, "24h")
    demoted = Caller(admin.user.model_copy(update={"role": "pilot"}))
    with pytest.raises(NotFound):  # reused for others: not for them now
        await state.view(demoted, pilot.board.dashboard_id, "24h")
    remembered = Caller(demoted.user, remembered=True)
    with pytest.raises(DatabaseUnavailable):  # nor kept for an outage
        await state.board(remembered, pilot.board.dashboard_id)
