"""Database drivers, one module each, behind `drivers.interface`.

`open_driver(settings)` opens the driver of `settings.backend`. A new driver implements
`Driver` and `Connection`, is listed in `_DRIVERS`, and brings a `sql/<dialect>/` folder
(which may hold only the statements that differ from a base dialect's).
"""

from __future__ import annotations

import importlib

from stratus_sql.config import Settings
from stratus_sql.drivers.interface import Driver

__all__ = ["DRIVERS", "open_driver"]

# dialect -> "module:class"; imported on first use, so SQLite users never load asyncpg.
DRIVERS = {
    "postgres": "stratus_sql.drivers.postgres:PostgresDriver",
    "sqlite": "stratus_sql.drivers.sqlite:SqliteDriver",
}


async def open_driver(settings: Settings) -> Driver:
    """The driver for `settings.database_url`, connected."""
    module, _, name = DRIVERS[settings.backend].partition(":")
    driver: type[Driver] = getattr(importlib.import_module(module), name)
    return await driver.open(settings)
