"""The SQL dialects whose statements are loaded: how each writes parameters, where its files are.

postgres (`$1..$n`, as asyncpg wants) and sqlite (`:name`, as sqlite3 wants) come registered.
Another dialect is registered with `register_dialect`; one that names a `base` holds only the
statements that differ from its base's (`stratus_sql.sqlfiles` fills in the rest).

Every change of the registry bumps `generation()`, so that what was loaded for the dialects
of before is loaded again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stratus_sql._resources import data_dir
from stratus_sql.errors import QueryFileError, UsageError

__all__ = [
    "DIALECTS",
    "Dialect",
    "base_chain",
    "dialects",
    "generation",
    "get_dialect",
    "on_change",
    "register_dialect",
    "unregister_dialect",
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """A SQL dialect: how its parameters are written and where its statements are.

    `placeholders`: `numbered` (`$1..$n`, as asyncpg wants) or `named` (`:name`, as sqlite3
    wants). `root` is the folder holding `<name>/<module>.sql` (default: the shipped `sql/`).
    A dialect with a `base` holds only the statements that differ from the base's.
    `schemes`: the DATABASE_URL prefixes that name it (`config.backend_of` reads them).
    """

    name: str
    placeholders: Literal["numbered", "named"]
    base: str | None = None
    root: Path | None = None
    schemes: tuple[str, ...] = ()

    def folder(self) -> Path:
        """The folder of this dialect's `<module>.sql` files."""
        return (self.root if self.root is not None else data_dir("sql")) / self.name


_SHIPPED = (
    Dialect("postgres", "numbered", schemes=("postgresql://", "postgres://")),
    Dialect("sqlite", "named", schemes=("sqlite:///",)),
)
DIALECTS = tuple(d.name for d in _SHIPPED)  # the shipped ones; dialects() has them all
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_registry: dict[str, Dialect] = {d.name: d for d in _SHIPPED}
_generation = 0


def dialects() -> dict[str, Dialect]:
    """Every registered dialect by name, in the order of registration (the shipped first)."""
    return dict(_registry)


def get_dialect(name: str) -> Dialect:
    """The registered dialect `name`; UsageError when there is none."""
    try:
        return _registry[name]
    except KeyError:
        raise UsageError(f"unknown dialect {name!r}") from None


def generation() -> int:
    """A number that changes whenever a dialect is registered or removed."""
    return _generation


def register_dialect(dialect: Dialect) -> None:
    """Register `dialect`; its base, if any, must be registered already.

    Registering the same dialect again does nothing; another dialect under a registered name
    is refused, as are a base that is not registered and a base chain that loops (UsageError).
    A file in the folder of a dialect with a base must override a module of the base
    (QueryFileError). Its statements are parsed when the query modules are next loaded.
    """
    if _registry.get(dialect.name) == dialect:
        return
    if not _NAME.fullmatch(dialect.name):
        raise UsageError(f"dialect name {dialect.name!r} is not an identifier")
    if dialect.name in _registry:
        raise UsageError(f"dialect {dialect.name!r} is already registered")
    if dialect.placeholders not in ("numbered", "named"):
        raise UsageError(f"dialect {dialect.name!r}: unknown placeholders {dialect.placeholders!r}")
    _registry[dialect.name] = dialect
    try:
        root = base_chain(dialect.name)[-1]
        for path in sorted(dialect.folder().glob("*.sql")) if dialect.base else ():
            if not (root.folder() / path.name).is_file():
                raise QueryFileError(f"{path}:1: dialect {root.name!r} has no {path.name}")
    except BaseException:
        del _registry[dialect.name]
        raise
    _changed()


def unregister_dialect(name: str) -> None:
    """Remove a registered dialect; the shipped ones, and the base of another, stay."""
    get_dialect(name)
    if name in DIALECTS:
        raise UsageError(f"dialect {name!r} is shipped with stratus_sql and cannot be removed")
    heirs = sorted(d.name for d in _registry.values() if d.base == name)
    if heirs:
        raise UsageError(f"dialect {name!r} is the base of {heirs}")
    del _registry[name]
    _changed()


def base_chain(name: str) -> list[Dialect]:
    """The dialect `name`, its base, the base's base, ...: the last one has no base."""
    chain = [get_dialect(name)]
    while (base := chain[-1].base) is not None:
        if base not in _registry:
            raise UsageError(f"dialect {chain[-1].name!r} names base {base!r}, not registered")
        if any(d.name == base for d in chain):
            raise UsageError(f"dialect {name!r}: its bases form a cycle through {base!r}")
        chain.append(_registry[base])
    return chain


_listeners: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> None:
    """Call `listener()` whenever a dialect is registered or removed."""
    _listeners.append(listener)


def _changed() -> None:
    global _generation
    _generation += 1
    for listener in _listeners:
        listener()
