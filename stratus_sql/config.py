"""Settings read from the environment, then from a `.env` file in the working directory.

A variable set in the environment wins over the same variable in `.env`. Invalid values raise
`ConfigError` naming the variable, at `connect()` time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stratus_sql.dialects import dialects, get_dialect
from stratus_sql.errors import ConfigError

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "backend_of", "read_env_file", "sqlite_path"]

DEFAULT_DATABASE_URL = "sqlite:///./stratus.db"
_SQLITE_SCHEME = "sqlite:///"
# Settings whose values an error message must not repeat.
_SECRETS = frozenset({"DASHBOARD_SESSION_SECRET"})


class Settings(BaseModel):
    """Connection settings; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, alias="DATABASE_URL", min_length=1)
    replica_url: str | None = Field(None, alias="DATABASE_REPLICA_URL")
    listen_url: str | None = Field(None, alias="DATABASE_LISTEN_URL")
    pool_min_size: int = Field(1, alias="DB_POOL_MIN_SIZE", ge=0)
    pool_max_size: int = Field(10, alias="DB_POOL_MAX_SIZE", ge=1)
    command_timeout: float = Field(30.0, alias="DB_COMMAND_TIMEOUT", gt=0)
    connect_timeout: float = Field(10.0, alias="DB_CONNECT_TIMEOUT", gt=0)
    pool_timeout: float = Field(10.0, alias="DB_POOL_TIMEOUT", gt=0)
    statement_cache_size: int = Field(100, alias="DB_STATEMENT_CACHE_SIZE", ge=0)
    max_inactive_lifetime: float = Field(300.0, alias="DB_MAX_INACTIVE_LIFETIME", ge=0)
    busy_timeout_ms: int = Field(5000, alias="DB_BUSY_TIMEOUT_MS", ge=0)
    memory_cache_size: int = Field(10_000, alias="DB_MEMORY_CACHE", ge=0)
    memory_cache_ttl: float = Field(30.0, alias="DB_MEMORY_CACHE_TTL", gt=0)
    slow_query_ms: float = Field(200.0, alias="DB_SLOW_QUERY_MS", ge=0)
    retry_attempts: int = Field(3, alias="DB_RETRY_ATTEMPTS", ge=0, le=20)
    session_secret: str | None = Field(
        None, alias="DASHBOARD_SESSION_SECRET", min_length=32, repr=False
    )
    dashboard_reuse_seconds: float = Field(1.0, alias="DASHBOARD_REUSE_SECONDS", ge=0, le=60)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        backend_of(url)
        return url

    @classmethod
    def load(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = ".env",
        **overrides: object,
    ) -> Settings:
        """Settings from `.env`, then the environment, then keyword overrides (field names)."""
        values: dict[str, object] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update(read_env_file(env_file))
        values.update(os.environ if environ is None else environ)
        known = {f.alias for f in cls.model_fields.values()}
        values = {k: v for k, v in values.items() if k in known and v != ""}
        for name, value in overrides.items():
            if name not in cls.model_fields:
                raise ConfigError(f"unknown setting {name!r} (one of {sorted(cls.model_fields)})")
            if value is not None:
                values[cls.model_fields[name].alias or name] = value
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            variable = error["loc"][0] if error["loc"] else "settings"
            got = values.get(str(variable))
            shown = "a secret, not shown" if variable in _SECRETS else repr(got)
            raise ConfigError(f"{variable}: {error['msg']} (got {shown})") from None
        for variable, extra in (
            ("DATABASE_REPLICA_URL", settings.replica_url),
            ("DATABASE_LISTEN_URL", settings.listen_url),
        ):
            if extra is not None and not extra.startswith(get_dialect("postgres").schemes):
                raise ConfigError(
                    f"{variable}: expected a PostgreSQL URL (postgresql://...), got "
                    f"{extra.split('://')[0]!r}://..."
                )
        if settings.pool_min_size > settings.pool_max_size:
            raise ConfigError(
                f"DB_POOL_MIN_SIZE ({settings.pool_min_size}) is larger than "
                f"DB_POOL_MAX_SIZE ({settings.pool_max_size})"
            )
        return settings

    @property
    def backend(self) -> str:
        """The dialect the URL names (`postgres`, `sqlite`, or a registered one's)."""
        return backend_of(self.database_url)


def backend_of(url: str) -> str:
    """The dialect whose URL schemes `url` starts with (see `dialects.Dialect.schemes`);
    ConfigError for anything else."""
    for dialect in dialects().values():
        if url.startswith(dialect.schemes):
            if dialect.name == "sqlite":
                sqlite_path(url)
            return dialect.name
    known = ", ".join(s for d in dialects().values() for s in d.schemes)
    raise ConfigError(f"DATABASE_URL must start with {known} (got {url.split('://')[0]!r}://...)")


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///relative.db` or `sqlite:////absolute.db` URL."""
    path = url.removeprefix(_SQLITE_SCHEME)
    if not url.startswith(_SQLITE_SCHEME) or not path or path == ":memory:" or "?" in path:
        raise ConfigError(
            f"DATABASE_URL: expected sqlite:///path/to/file.db, got {url!r} "
            "(in-memory databases and URL options are not supported)"
        )
    return path


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file; `export`, quotes and `#` comments are understood."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"{path}:{lineno}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values
