"""`stratus-sql serve`: the dashboard app on uvicorn (needs the `web` extra)."""

from __future__ import annotations

import argparse
import os
import secrets
from typing import Any

from stratus_sql.config import Settings
from stratus_sql.errors import UsageError

__all__ = ["add_serve_parser", "serve"]


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return int(text)


def _reuse(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 60:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 60, got {text!r}")
    return seconds


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected 1 to 64 workers, got {text!r}")
    return int(text)


def add_serve_parser(commands: Any) -> None:
    web = commands.add_parser("serve", help="the dashboard web app (the web extra)")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    web.add_argument("--port", type=_port, default=8000, help="port to listen on (8000)")
    web.add_argument(
        "--reuse-seconds",
        type=_reuse,
        help="give a series, and a key's check, this recent again (DASHBOARD_REUSE_SECONDS, 1)",
    )
    web.add_argument("--workers", type=_workers, default=1, help="processes answering requests (1)")
    web.add_argument("--access-log", action="store_true", help="log every request")


def serve(url: str, args: argparse.Namespace) -> None:
    """Serve the dashboard until interrupted. Several workers share one session secret
    (DASHBOARD_SESSION_SECRET, else one made for this run)."""
    try:
        import uvicorn

        from stratus_sql.web import create_app
    except ImportError as exc:
        raise UsageError(
            f"the dashboard needs the web extra ({exc.name} is missing): "
            "pip install 'stratus-sql[web]'"
        ) from None
    reuse = args.reuse_seconds
    if reuse is None:
        reuse = Settings.load(database_url=url).dashboard_reuse_seconds
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"dashboard on http://{shown}:{args.port}/ "
        "(sign in with a key from stratus-sql api-key create)"
    )
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": "info",
        "access_log": args.access_log,
        "server_header": False,
    }
    if args.workers == 1:
        uvicorn.run(create_app(url, reuse_seconds=reuse), **options)
        return
    # The workers are processes of their own: they build the app from the environment.
    os.environ["DATABASE_URL"] = url
    os.environ["DASHBOARD_REUSE_SECONDS"] = str(reuse)
    os.environ.setdefault("DASHBOARD_SESSION_SECRET", secrets.token_urlsafe(32))
    uvicorn.run(
        "stratus_sql.web.app:app_from_environment",
        factory=True,
        workers=args.workers,
        **options,
    )
