"""The dashboard web app (`stratus-sql serve`, the `web` extra): see the README's "Dashboard"."""

from stratus_sql.web.app import create_app

__all__ = ["create_app"]
