"""Where the shipped `sql/` and `migrations/` folders are, in a wheel or in a checkout."""

from __future__ import annotations

from pathlib import Path

from stratus_sql.errors import UsageError

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The `sql` or `migrations` folder: inside the installed wheel, else beside the package."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise UsageError(f"the {name}/ folder is not installed next to {_PACKAGE}")
