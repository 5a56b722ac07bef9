"""The dashboard app: a JSON API, CSV downloads, a health check, sign-in and the page.

Every request runs as the user whose API key it presents (Bearer header or session cookie):
on PostgreSQL its reads run in a transaction scoped to that user by row-level security, so
a handler's mistake still cannot show another user's rows; on SQLite, which has none, the
handlers' ownership checks are all there is. An admin sees every dashboard and the
organisation's series. When the database is down, a series answers with the last good one
kept in this process, marked stale; never with invented data.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from stratus_sql.config import Settings
from stratus_sql.database import Database
from stratus_sql.errors import (
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    QueryTimeout,
    UsageError,
)
from stratus_sql.queries import metrics
from stratus_sql.records import Dashboard, StaleableSeries
from stratus_sql.web import pages, signin
from stratus_sql.web.auth import Caller
from stratus_sql.web.responses import (
    SecurityHeaders,
    csv_response,
    failure,
    is_api,
    json_response,
)
from stratus_sql.web.signin import FORM_SCHEMA
from stratus_sql.web.state import AppState, Forbidden, NotSignedIn, Period

__all__ = ["app_from_environment", "create_app"]

log = logging.getLogger("stratus_sql.web")
PeriodQuery = Annotated[Period, Query(description="24h: 24 x 1 h; 7d: 28 x 6 h; 30d: 30 x 1 day")]

STATIC = Path(__file__).parent / "static"
UNAVAILABLE = "banco de dados indisponível"


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    why = {
        401: "no API key, or an unknown or revoked one",
        403: "only an admin may read the organisation's series",
        404: "no such dashboard, or another user's",
        503: "the database is unavailable and there is no earlier answer to give",
    }
    return {code: {"description": why[code]} for code in codes}


def _pages(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A page's answers: without a valid key, 303 to the sign-in form rather than 401."""
    return {303: {"description": "no valid key: to /sign-in"}, **_errors(*codes)}


async def _caller(request: Request) -> Caller:
    state: AppState = request.app.state.stratus
    return await state.caller(request)


# Module level: FastAPI resolves the handlers' annotations in this module's namespace.
Signed = Annotated[Caller, Depends(_caller)]


def create_app(
    url: str | None = None, *, db: Database | None = None, reuse_seconds: float = 0.0
) -> FastAPI:
    """The dashboard app over `db`, else over a Database it opens on `url` (else
    DATABASE_URL, else ./stratus.db) for its lifespan. A series computed for a caller is
    given again for `reuse_seconds` (0: every request reads)."""
    if not 0 <= reuse_seconds <= 60:
        raise UsageError(f"reuse_seconds: expected 0 to 60, got {reuse_seconds!r}")
    state = AppState(url, db, reuse_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if db is not None:  # the caller's to close
            yield
            return
        try:
            await state.database()
        except (DatabaseUnavailable, QueryTimeout) as exc:
            log.warning("the database is unavailable (%s): answering 503 until it is back", exc)
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="Stratus.IA dashboard",
        version="1",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.stratus = state
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        return failure(request, 401, "an API key is needed: Authorization: Bearer <key>")

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return failure(request, 403, "only an admin may read the organisation's series")

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return failure(request, 404, str(exc))

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, exc: InvalidInput) -> Response:
        return failure(request, 422, str(exc))

    async def unavailable(request: Request, exc: Exception) -> Response:
        return failure(request, 503, UNAVAILABLE)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if is_api(request):
            return await request_validation_exception_handler(request, exc)
        error = exc.errors()[0]
        return failure(request, 422, f"{error['loc'][-1]}: {error['msg']}")

    # Another error is a fault of the app's and stays a 500, not passed off as an outage.
    for outage in (DatabaseUnavailable, QueryTimeout):
        app.add_exception_handler(outage, unavailable)

    @app.get("/api/health", responses={503: {"description": "unreachable or not migrated"}})
    async def health() -> Response:
        """Whether the database answers, how fast, and how many migrations are pending
        (asked at most every 5 seconds, however often this is called)."""
        found = await state.health()
        body = {
            "healthy": found.healthy,
            "reachable": found.reachable,
            "latency_ms": found.latency_ms,
            "pending_migrations": len(found.pending_migrations),
        }
        return json_response(body, 200 if found.healthy else 503)

    @app.get("/api/dashboards", response_model=list[Dashboard], responses=_errors(401, 503))
    async def api_dashboards(who: Signed) -> Response:
        """The caller's dashboards (an admin's: every user's), by name."""
        return json_response([b.model_dump(mode="json") for b in await state.dashboards_of(who)])

    @app.get(
        "/api/dashboards/{dashboard_id}/series",
        response_model=StaleableSeries,
        responses=_errors(401, 404, 503),
    )
    async def api_series(dashboard_id: UUID, who: Signed, period: PeriodQuery = "24h") -> Response:
        """A dashboard's series: every bucket, oldest first; `stale` when it is the last
        good one, kept while the database is unavailable, `age_seconds` old."""
        _, series = await state.view(who, dashboard_id, period)
        return json_response(series.model_dump(mode="json"))

    @app.get(
        "/api/dashboards/{dashboard_id}/series.csv",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}, **_errors(401, 404, 503)},
    )
    async def api_series_csv(
        dashboard_id: UUID, who: Signed, period: PeriodQuery = "24h"
    ) -> Response:
        """The series as CSV (empty cells for an empty bucket's statistics); headers
        X-Stale and X-Age-Seconds say whether it is the last good one."""
        _, series = await state.view(who, dashboard_id, period)
        return csv_response(series, f"painel-{dashboard_id}-{period}")

    @app.get(
        "/api/organisation/series",
        response_model=StaleableSeries,
        responses=_errors(401, 403, 503),
    )
    async def api_organisation_series(who: Signed, period: PeriodQuery = "24h") -> Response:
        """Every user's samples as one series (admins only)."""
        return json_response((await state.series(who, None, period)).model_dump(mode="json"))

    @app.get(
        "/api/organisation/series.csv",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}, **_errors(401, 403, 503)},
    )
    async def api_organisation_series_csv(who: Signed, period: PeriodQuery = "24h") -> Response:
        """The organisation's series as CSV (admins only)."""
        return csv_response(await state.series(who, None, period), f"organizacao-{period}")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/dashboards", 303)

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_form() -> Response:
        """The sign-in form (an API key)."""
        return HTMLResponse(pages.sign_in_page())

    @app.post(
        "/sign-in",
        response_class=RedirectResponse,
        status_code=303,
        responses={401: {"description": "not a valid key"}, 403: {"description": "cross-site"}},
        openapi_extra=FORM_SCHEMA,
    )
    async def sign_in(request: Request) -> Response:
        """Sign in with an API key (form field `key`): a session cookie, then the list."""
        return await signin.sign_in(state, request)

    @app.post(
        "/sign-out",
        response_class=RedirectResponse,
        status_code=303,
        responses={403: {"description": "cross-site"}},
    )
    async def sign_out(request: Request) -> Response:
        """Sign out: the session cookie is cleared."""
        return await signin.sign_out(request)

    @app.get("/dashboards", response_class=HTMLResponse, responses=_pages(503))
    async def dashboards_page(who: Signed) -> Response:
        """The list of the caller's dashboards (an admin's: every user's)."""
        boards = await state.dashboards_of(who)
        links = [(b.name, f"/dashboards/{b.dashboard_id}") for b in boards]
        organisation = "/organisation" if who.admin else None
        return HTMLResponse(
            pages.dashboards_page(
                user_name=who.user.name, dashboards=links, organisation_url=organisation
            )
        )

    @app.get("/dashboards/{dashboard_id}", response_class=HTMLResponse, responses=_pages(404, 503))
    async def dashboard_page(
        dashboard_id: UUID, who: Signed, period: PeriodQuery = "24h"
    ) -> Response:
        """The page of a dashboard: five charts, a summary, the period switcher, CSV."""
        board, series = await state.view(who, dashboard_id, period)
        csv_url = f"/api/dashboards/{dashboard_id}/series.csv?period={period}"
        return _page(board.name, period, series, csv_url)

    @app.get("/organisation", response_class=HTMLResponse, responses=_pages(403, 503))
    async def organisation_page(who: Signed, period: PeriodQuery = "24h") -> Response:
        """The organisation's page (admins only)."""
        series = await state.series(who, None, period)
        csv_url = f"/api/organisation/series.csv?period={period}"
        return _page("Toda a organização", period, series, csv_url)

    return app


def _page(title: str, period: Period, series: StaleableSeries, csv_url: str) -> Response:
    return HTMLResponse(
        pages.dashboard_page(
            title=title,
            period=period,
            periods=list(metrics.PERIODS),
            series=series.model_dump(mode="json"),
            csv_url=csv_url,
            list_url="/dashboards",
        )
    )


def app_from_environment() -> FastAPI:
    """The app of a `stratus-sql serve --workers N` process: DATABASE_URL, and
    DASHBOARD_REUSE_SECONDS, from the environment the command set."""
    settings = Settings.load()
    return create_app(reuse_seconds=settings.dashboard_reuse_seconds)
