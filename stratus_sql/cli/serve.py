"""`stratus-sql serve`: the dashboard app on uvicorn (needs the `web` extra)."""

from __future__ import annotations

from stratus_sql.errors import UsageError

__all__ = ["serve"]


def serve(url: str, host: str, port: int, reuse_seconds: float = 1.0) -> None:
    """Serve the dashboard on host:port until interrupted; a series is read at most once
    per `reuse_seconds` per user, dashboard and period."""
    try:
        import uvicorn

        from stratus_sql.web import create_app
    except ImportError as exc:
        raise UsageError(
            f"the dashboard needs the web extra ({exc.name} is missing): "
            "pip install 'stratus-sql[web]'"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    print(
        f"dashboard on http://{shown}:{port}/ (sign in with a key from stratus-sql api-key create)"
    )
    app = create_app(url, reuse_seconds=reuse_seconds)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
