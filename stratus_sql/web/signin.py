"""Signing in and out of the page: the form posts an API key, the answer sets a signed
session cookie (see `auth.Sessions`), and signing out clears it.

Both refuse a request another site made (`Origin` / `Sec-Fetch-Site`), so no page elsewhere
can sign a browser in with its own key or out. The cookie is HttpOnly, SameSite=Strict, and
Secure unless the request came over plain HTTP to a loopback address (a browser keeps a
Secure cookie only from an HTTPS origin or a loopback one).
"""

from __future__ import annotations

from urllib.parse import parse_qs
from uuid import UUID

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stratus_sql.queries import api_keys
from stratus_sql.web import pages
from stratus_sql.web.auth import COOKIE
from stratus_sql.web.state import AppState

__all__ = ["FORM_SCHEMA", "sign_in", "sign_out"]

MAX_FORM_BYTES = 4096
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
FORM_SCHEMA = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"key": {"type": "string", "description": "an API key"}},
                }
            }
        }
    }
}


def _same_site(request: Request) -> bool:
    """Whether the request came from this app's own pages (or from no page at all)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _refused(status: int, message: str) -> Response:
    return HTMLResponse(pages.error_page(status=status, message=message), status)


async def _form_key(request: Request) -> str | None:
    """The form's `key`, or None when the body holds none or is too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"))
    return (fields.get("key") or [""])[0].strip() or None


async def sign_in(state: AppState, request: Request) -> Response:
    if not _same_site(request):
        return _refused(403, "Pedido de outro site recusado.")
    key = await _form_key(request)
    user = None if key is None else await api_keys.authenticate(await state.database(), key)
    if key is None or user is None:
        return HTMLResponse(pages.sign_in_page(error="Chave inválida ou revogada."), 401)
    response = RedirectResponse("/dashboards", 303)
    local = request.url.scheme == "http" and request.url.hostname in LOOPBACK
    response.set_cookie(
        COOKIE,
        state.sessions.issue(UUID(hex=key[3:35])),  # authenticate checked the key's shape
        max_age=state.sessions.lifetime,
        path="/",
        secure=not local,
        httponly=True,
        samesite="strict",
    )
    return response


async def sign_out(request: Request) -> Response:
    if not _same_site(request):
        return _refused(403, "Pedido de outro site recusado.")
    response = RedirectResponse("/sign-in", 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
