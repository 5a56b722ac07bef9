"""`stratus-sql serve`: the dashboard app on uvicorn (needs the `web` extra)."""

from __future__ import annotations

from stratus_sql.errors import UsageError

__all__ = ["serve"]


def serve(url: str, host: str, port: int) -> None:
    """Serve the dashboard on host:port until interrupted."""
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
    uvicorn.run(create_app(url), host=host, port=port, log_level="info", server_header=False)
