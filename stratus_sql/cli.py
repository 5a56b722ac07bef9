"""The `stratus-sql` command: migrate, rollback, status and check.

Every command works on `--url`, else DATABASE_URL, else the embedded ./stratus.db. Errors
print one line on stderr and exit 1; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from stratus_sql.check import check_statements
from stratus_sql.config import Settings
from stratus_sql.errors import StratusError
from stratus_sql.migrations import apply_migrations, migration_status, rollback_migrations

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratus-sql", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: DATABASE_URL or ./stratus.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply every pending migration")
    rollback = commands.add_parser("rollback", help="roll back the newest migration(s)")
    how_many = rollback.add_mutually_exclusive_group()
    how_many.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    how_many.add_argument("--all", action="store_true", help="every applied migration")
    commands.add_parser("status", help="list migrations and whether each is applied")
    commands.add_parser("check", help="prepare every named statement against the database")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        url = args.url or Settings.load().database_url
        return _run(args, url)
    except StratusError as exc:
        print(f"stratus-sql {args.command}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, url: str) -> int:
    if args.command == "migrate":
        applied = apply_migrations(url)
        print("\n".join(f"applied {m}" for m in applied) or "up to date")
    elif args.command == "rollback":
        undone = rollback_migrations(url, steps=None if args.all else args.steps)
        print("\n".join(f"rolled back {m}" for m in undone) or "nothing to roll back")
    elif args.command == "status":
        for status in migration_status(url):
            print(f"{'applied' if status.applied else 'pending'}  {status.id}")
    elif args.command == "check":
        checked, problems = asyncio.run(check_statements(url))
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{checked} statements checked, {len(problems)} problems")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
