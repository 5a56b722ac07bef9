"""Settings from the environment and .env; invalid values fail at connect() naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

import stratus_sql
from stratus_sql import ConfigError, Settings
from stratus_sql.config import read_env_file


def test_defaults() -> None:
    settings = Settings.load(environ={}, env_file=None)
    assert settings.database_url == "sqlite:///./stratus.db"
    assert settings.backend == "sqlite"
    assert (settings.pool_min_size, settings.pool_max_size) == (1, 10)
    assert settings.command_timeout == 30.0
    assert settings.statement_cache_size == 100


def test_environment_wins_over_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\n"
        "export DATABASE_URL='postgresql://app@db:5432/stratus'\n"
        "DB_POOL_MAX_SIZE=20 # inline comment\n"
        'DB_COMMAND_TIMEOUT="12.5"\n'
        "UNRELATED=x\n"
    )
    settings = Settings.load(environ={"DB_POOL_MAX_SIZE": "30"}, env_file=env)
    assert settings.database_url == "postgresql://app@db:5432/stratus"
    assert settings.backend == "postgres"
    assert settings.pool_max_size == 30
    assert settings.command_timeout == 12.5


def test_malformed_env_file_line_names_file_and_line(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OK=1\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=VALUE"):
        read_env_file(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DB_POOL_MAX_SIZE", "ten"),
        ("DB_POOL_MAX_SIZE", "0"),
        ("DB_POOL_MIN_SIZE", "-1"),
        ("DB_COMMAND_TIMEOUT", "0"),
        ("DB_CONNECT_TIMEOUT", "soon"),
        ("DB_STATEMENT_CACHE_SIZE", "-5"),
        ("DB_MAX_INACTIVE_LIFETIME", "-1"),
        ("DB_BUSY_TIMEOUT_MS", "1.5"),
        ("DATABASE_URL", "mysql://localhost/db"),
        ("DATABASE_URL", "sqlite:///:memory:"),
        ("DATABASE_URL", "sqlite://relative-without-third-slash.db"),
    ],
)
async def test_invalid_value_fails_at_connect_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        await stratus_sql.connect()


async def test_min_pool_larger_than_max_is_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DB_POOL_MIN_SIZE", "5")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "2")
    with pytest.raises(ConfigError, match="DB_POOL_MIN_SIZE"):
        await stratus_sql.connect(f"sqlite:///{tmp_path}/x.db")
    assert not (tmp_path / "x.db").exists()


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'pool_max'"):
        Settings.load(pool_max=4)


async def test_env_file_in_working_directory_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///./from-env-file.db\n")
    stratus_sql.apply_migrations()
    async with await stratus_sql.connect() as db:
        assert db.settings.database_url == "sqlite:///./from-env-file.db"
    assert (tmp_path / "from-env-file.db").is_file()


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = read_env_file(Path(__file__).parent.parent / ".env.example")
    defaults = Settings.load(environ={}, env_file=None)
    for name, field in Settings.model_fields.items():
        assert field.alias in example, f"{field.alias} missing from .env.example"
        parsed = Settings.load(environ={field.alias: example[field.alias]}, env_file=None)
        assert getattr(parsed, name) == getattr(defaults, name), field.alias


def test_a_short_session_secret_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError, match="DASHBOARD_SESSION_SECRET") as refused:
        Settings.load(environ={"DASHBOARD_SESSION_SECRET": "hunter2-hunter2"}, env_file=None)
    assert "hunter2" not in str(refused.value)
    long_enough = "s" * 32
    loaded = Settings.load(environ={"DASHBOARD_SESSION_SECRET": long_enough}, env_file=None)
    assert loaded.session_secret == long_enough
