"""The `stratus-sql` command: migrate, rollback, status, check, seed, export-user, purge,
audit, metrics, maintain, health, api-key and serve.

Every command works on `--url`, else DATABASE_URL, else the embedded ./stratus.db. Errors
print one line on stderr and exit 1; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import orjson

from stratus_sql.check import check_statements
from stratus_sql.cli.api_key import add_api_key_parser, api_key_command
from stratus_sql.cli.seed import SeedReport, progress_bar, seed
from stratus_sql.cli.serve import add_serve_parser, serve
from stratus_sql.config import Settings
from stratus_sql.database import Database, connect
from stratus_sql.errors import StratusError, UsageError
from stratus_sql.migrations import apply_migrations, migration_status, rollback_migrations
from stratus_sql.queries import audit, conversations, memory, metrics, users

__all__ = ["main"]

T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratus-sql", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: DATABASE_URL or ./stratus.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply every pending migration")
    rollback = commands.add_parser("rollback", help="roll back the newest migration(s)")
    how_many = rollback.add_mutually_exclusive_group()
    how_many.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    how_many.add_argument("--all", action="store_true", help="every applied migration")
    rollback.add_argument(
        "--force", action="store_true", help="roll back even when tables holding rows would go"
    )
    commands.add_parser("status", help="list migrations and whether each is applied")
    commands.add_parser("check", help="prepare every named statement against the database")
    seeding = commands.add_parser(
        "seed", help="the admin, the AI Monitoring Dashboard and sample metrics"
    )
    seeding.add_argument("--samples", type=int, default=720, help="how many (default 720)")
    seeding.add_argument("--users", type=int, default=1, help="over how many users (default 1)")
    export = commands.add_parser("export-user", help="everything stored about a person, as JSON")
    export.add_argument("user_id")
    export.add_argument("--output", help="file to write (default: standard output)")
    purge = commands.add_parser("purge", help="delete old conversations and expired memories")
    purge.add_argument("--conversations-older-than", type=int, required=True, metavar="DAYS")
    trail = commands.add_parser("audit", help="seal, verify or prune the audit trail")
    trail.add_argument("action", choices=["seal", "verify", "prune"])
    trail.add_argument("--before", metavar="YYYY-MM", help="prune: drop the months before this")
    samples = commands.add_parser("metrics", help="prune raw samples or rebuild the rollups")
    samples.add_argument("action", choices=["prune", "rebuild-rollups"])
    samples.add_argument(
        "--before", metavar="YYYY-MM", help="prune: delete the raw samples before this month"
    )
    samples.add_argument(
        "--since",
        metavar="YYYY-MM-DD[THH:MM]",
        help="rebuild-rollups: from this UTC time on (default: every hour)",
    )
    commands.add_parser("maintain", help="create the coming months' audit and metrics partitions")
    commands.add_parser("health", help="reachability, latency, pool and pending migrations")
    add_api_key_parser(commands)
    add_serve_parser(commands)
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
        asyncio.run(_with_db(url, _maintain))
    elif args.command == "maintain":
        made_audit, made_metrics = asyncio.run(_with_db(url, _maintain))
        print(f"created {made_audit} audit and {made_metrics} metrics partition(s)")
    elif args.command == "rollback":
        undone = rollback_migrations(url, steps=None if args.all else args.steps, force=args.force)
        print("\n".join(f"rolled back {m}" for m in undone) or "nothing to roll back")
    elif args.command == "status":
        for status in migration_status(url):
            loses = ", ".join(f"{t} ({n} rows)" for t, n in status.rollback_loses.items())
            lost = f"  (rollback would drop or empty {loses})" if loses else ""
            print(f"{'applied' if status.applied else 'pending'}  {status.id}{lost}")
    elif args.command == "check":
        checked, problems = asyncio.run(check_statements(url))
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{checked} statements checked, {len(problems)} problems")
        return 1 if problems else 0
    elif args.command == "seed":
        pending = [s.id for s in migration_status(url) if not s.applied]
        if pending:
            raise UsageError(f"pending migrations ({', '.join(pending)}): run stratus-sql migrate")
        report = asyncio.run(_seed(url, args.samples, args.users))
        print(
            f"seeded {report.samples:,} samples over {report.users} user(s); "
            f'admin {report.admin.email}, dashboard "{report.dashboard.name}"'
        )
    elif args.command == "export-user":
        data = asyncio.run(_with_db(url, lambda db: users.export_user_data(db, args.user_id)))
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
        if args.output:
            Path(args.output).write_text(text + "\n", "utf-8")
            print(f"wrote {args.output}")
        else:
            print(text)
    elif args.command == "purge":
        days = args.conversations_older_than
        chats = asyncio.run(
            _with_db(url, lambda db: conversations.purge_conversations(db, older_than_days=days))
        )
        expired = asyncio.run(_with_db(url, memory.purge_expired))
        print(f"deleted {chats} conversation(s) older than {days} days, {expired} expired memories")
    elif args.command == "audit":
        return _audit(url, args.action, args.before)
    elif args.command == "metrics":
        _metrics(url, args.action, args.before, args.since)
    elif args.command == "serve":
        serve(url, args)
    elif args.command == "health":
        health = asyncio.run(_with_db(url, lambda db: db.health()))
        print(orjson.dumps({**dataclasses.asdict(health), "healthy": health.healthy}).decode())
        return 0 if health.healthy else 1
    elif args.command == "api-key":
        for line in asyncio.run(api_key_command(url, args)):
            print(line)
    return 0


def _audit(url: str, action: str, before: str | None) -> int:
    if action == "prune":
        month = _month(before)
        dropped = asyncio.run(_with_db(url, lambda db: audit.prune(db, before=month)))
        print(f"dropped {dropped} monthly partition(s) before {month:%Y-%m}")
        return 0
    if action == "seal":
        print(f"sealed {asyncio.run(_with_db(url, audit.seal))} audit rows")
        return 0
    report = asyncio.run(_with_db(url, audit.verify))
    if report.ok:
        print(f"audit chain intact: {report.rows_checked} rows in {report.seals_checked} seals")
        return 0
    print(
        f"audit chain broken at seal {report.seal_id}, row {report.audit_id}: {report.problem}",
        file=sys.stderr,
    )
    return 1


async def _maintain(db: Database) -> tuple[int, int]:
    return await audit.maintain(db), await metrics.maintain(db)


def _metrics(url: str, action: str, before: str | None, since: str | None) -> None:
    if action == "prune":
        month = _month(before)
        gone = asyncio.run(_with_db(url, lambda db: metrics.prune(db, before=month)))
        print(f"deleted {gone:,} raw sample(s) before {month:%Y-%m}; the rollups keep them")
        return
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            raise UsageError(f"--since: expected YYYY-MM-DD[THH:MM], got {since!r}") from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    written = asyncio.run(_with_db(url, lambda db: metrics.rebuild_rollups(db, since=start)))
    print(f"rebuilt {written:,} hourly rollup row(s)")


def _month(text: str | None) -> date:
    try:
        return datetime.strptime(text or "", "%Y-%m").date()
    except ValueError:
        raise UsageError(f"--before: expected YYYY-MM, got {text!r}") from None


async def _with_db(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async with await connect(url) as db:
        return await work(db)


async def _seed(url: str, samples: int, users: int) -> SeedReport:
    async with await connect(url) as db:
        show = progress_bar if samples >= 10_000 else None
        return await seed(db, samples=samples, users_count=users, progress=show)


if __name__ == "__main__":
    sys.exit(main())
