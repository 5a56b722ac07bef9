"""The built wheel works on its own: installed outside the checkout, it migrates and queries,
and `make demo`'s module prints a user read back from the embedded database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import stratus_sql
from stratus_sql.queries import users
from stratus_sql.records import User

ROOT = Path(__file__).resolve().parent.parent

QUERY = """
import asyncio, stratus_sql
from stratus_sql.queries import users
assert "/venv/" in stratus_sql.__file__, stratus_sql.__file__
async def main():
    async with await stratus_sql.connect() as db:
        user = await users.create_user(db, name="Ana", email="ana@example.com", role="mechanic")
        print((await users.get_user(db, user.user_id)).email)
asyncio.run(main())
"""


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        cwd=out,
    )
    (built,) = out.glob("stratus_sql-*.whl")
    return built


def test_wheel_installs_outside_the_checkout_and_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python, script = target / "bin" / "python", target / "bin" / "stratus-sql"
    # Install the wheel alone, offline; its dependencies are borrowed from the test
    # environment through a .pth line. The checkout is not on that path (.pth files inside
    # an added directory are not processed, so the editable install stays out of sight).
    run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        cwd=tmp_path,
    )
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            cwd=tmp_path,
        ).strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PYTHON"))}
    work = tmp_path / "work"
    work.mkdir()
    assert "applied 0001.initial_schema" in run([str(script), "migrate"], work, env)
    assert run([str(python), "-c", QUERY], work, env).strip() == "ana@example.com"
    assert (work / "stratus.db").is_file()
    assert (site / "stratus_sql" / "_data" / "sql" / "postgres" / "users.sql").is_file()


def test_demo_runs_the_usage_example_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    first = run([sys.executable, "-m", "stratus_sql.cli.demo"], tmp_path, env)
    for expected in (
        "João Silva <joao.silva@example.com> · pilot · licenças PP, PC, IFR",
        'preferred_aircraft = "Cessna 172" (long_term, importância 0.8)',
        '"Consulta meteorológica" · 1 mensagem(ns)',
        "Qual o METAR de SBGR?",
        'busca      "cessna" → preferred_aircraft',
        "AI Monitoring Dashboard · últimas 24 h · 24 intervalos de 1 h · 24 amostras",
        "eficiência da IA",
    ):
        assert expected in first, expected
    assert "Traceback" not in first
    again = run([sys.executable, "-m", "stratus_sql.cli.demo"], tmp_path, env)
    assert "migrações: em dia" in again
    assert '"Consulta meteorológica" · 2 mensagem(ns)' in again


def test_readme_quickstart_runs_twice(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    match = re.search(r"## Quickstart\n\n```python\n(.*?)```", readme, re.DOTALL)
    assert match, "README has no Quickstart code block"
    (tmp_path / "quickstart.py").write_text(match.group(1))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    for _ in range(2):
        run([sys.executable, "quickstart.py"], tmp_path, env)
    assert (tmp_path / "stratus.db").is_file()

    async def licensed_ifr() -> list[User]:
        async with await stratus_sql.connect(f"sqlite:///{tmp_path}/stratus.db") as db:
            return (await users.list_users(db, license="IFR")).items

    # The second run found the first run's user: one João, with both runs' changes.
    (joao,) = asyncio.run(licensed_ifr())
    assert (joao.name, joao.email, joao.licenses) == (
        "João Silva",
        "joao.silva@example.com",
        ["PP", "PC", "IFR"],
    )
    assert joao.preferences == {"idioma": "pt-BR", "unidades": {"altitude": "m"}}
    assert joao.last_active is not None
