"""The app's responses: JSON, CSV, failures (JSON for the API, a page or the sign-in
redirect for pages), and the headers every response carries."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stratus_sql.records import MetricBucket, StaleableSeries
from stratus_sql.web import pages

__all__ = ["SecurityHeaders", "csv_response", "failure", "is_api", "json_response"]

# The record's own fields, in its order.
CSV_COLUMNS = tuple(MetricBucket.model_fields)
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # a form's Origin is "null" under no-referrer
    (b"cache-control", b"no-store"),
]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def csv_response(series: StaleableSeries, name: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for bucket in series.buckets:
        row = bucket.model_dump(mode="json")
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    headers = {
        "content-disposition": f'attachment; filename="{name}.csv"',
        "x-stale": "true" if series.stale else "false",
        "x-age-seconds": f"{series.age_seconds:.3f}",
    }
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


class SecurityHeaders:
    """Adds HEADERS to every response: nothing from other hosts, nothing cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def failure(request: Request, status: int, message: str) -> Response:
    if is_api(request):
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        return Response(orjson.dumps({"detail": message}), status, headers, "application/json")
    if status == 401:
        return RedirectResponse("/sign-in", 303)
    return HTMLResponse(pages.error_page(status=status, message=message), status)
