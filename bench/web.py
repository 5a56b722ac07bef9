"""The dashboard API under HTTP load: `GET /api/dashboards/{id}/series` with wrk.

    python bench/web.py [--samples 1000000] [--users 10] [--connections 50] [--seconds 20]

A throwaway database on STRATUS_BENCH_SERVER (default the local server) gets `--users`
pilots with a dashboard each and `--samples` samples over 35 days, round-robin over them
(loaded with record_metrics; then each month moved to its partition by `metrics.maintain`,
and VACUUM ANALYZE as autovacuum would run). `stratus-sql serve` runs on a free loopback
port in a process of its own; wrk (Debian's) keeps `--connections` requests in flight for
`--seconds`, as one pilot, for each period, after a warm-up, and its Lua `done` hook prints
the latency percentiles (p50 / p95 / p99) and the request rate; with series reused for 1 s
and every request read, by one process and by two (`--workers`). The health check (the app
and its HTTP stack, answered from a 5-second memo) is measured the same way, as the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import psycopg
from metrics import BATCH, rows_for
from throwaway import throwaway_database

import stratus_sql
from stratus_sql.queries import api_keys, dashboards, metrics, users

REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f %.3f %d\\n",
    summary.requests, summary.duration, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def prepare(url: str, n_users: int, n_samples: int) -> tuple[str, str]:
    """Users with a dashboard each, the samples; returns (a pilot's key, their dashboard)."""
    stratus_sql.apply_migrations(url)
    async with await stratus_sql.connect(url) as db:
        boards = {}
        for i in range(n_users):
            user = await users.create_user(
                db, name=f"P{i}", email=f"p{i}@bench.example", role="pilot"
            )
            board = await dashboards.create_dashboard(db, user_id=user.user_id, name="IA")
            boards[user.user_id] = board.dashboard_id
        samples = rows_for(list(boards), n_samples, datetime.now(UTC), random.Random(1))
        while batch := list(islice(samples, BATCH)):
            for row in batch:
                row["dashboard_id"] = boards[row["user_id"]]
            await metrics.record_metrics(db, batch)
        await metrics.maintain(db)  # the months loaded go from the default partition to theirs
        first = next(iter(boards))
        key = (await api_keys.create_api_key(db, user_id=first)).key
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # as autovacuum would after a load
    return key, str(boards[first])


def wrk(url: str, key: str, connections: int, seconds: int, script: Path) -> dict[str, float]:
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-H", f"Authorization: Bearer {key}", "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, micros, p50, p95, p99, worst, errors = found.groups()
    return {
        "rate": int(requests) / (int(micros) / 1e6),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(worst),
        "errors": float(errors),
    }


def serve(url: str, port: int, log: Path, reuse: float, workers: int) -> subprocess.Popen[bytes]:
    program = str(Path(sys.executable).parent / "stratus-sql")
    command = [program, "--url", url, "serve", "--port", str(port), "--reuse-seconds", str(reuse)]
    command += ["--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DB_SLOW_QUERY_MS": "10000"},
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the server did not start: {log.read_text()}") from None
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/web.py needs wrk: make install installs Debian's")
    with throwaway_database("stratus_bench_web") as url, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        key, board = asyncio.run(prepare(url, args.users, args.samples))
        print(f"loaded {args.samples:,} samples in {time.perf_counter() - started:.0f} s")
        script = Path(tmp) / "report.lua"
        script.write_text(REPORT)
        for reuse, workers in ((1.0, 1), (1.0, 2), (0.0, 1), (0.0, 2)):
            port = free_port()
            server = serve(url, port, Path(tmp) / "server.log", reuse, workers)
            try:
                measure(f"http://127.0.0.1:{port}", board, key, args, script, reuse, workers)
            finally:
                server.terminate()
                server.wait(timeout=30)


def measure(
    base: str,
    board: str,
    key: str,
    args: argparse.Namespace,
    script: Path,
    reuse: float,
    workers: int,
) -> None:
    targets = [("health", f"{base}/api/health")] + [
        (f"series {period}", f"{base}/api/dashboards/{board}/series?period={period}")
        for period in ("24h", "7d", "30d")
    ]
    print(
        f"\n{args.connections} connections, {args.seconds} s each, one pilot's key, "
        f"{args.samples:,} samples of {args.users} users, --reuse-seconds {reuse} "
        f"--workers {workers}\n"
    )
    print(f"{'request':<12}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'errors':>8}")  # fmt: skip
    for name, target in targets:
        wrk(target, key, args.connections, 3, script)  # warm-up
        got = wrk(target, key, args.connections, args.seconds, script)
        print(f"{name:<12}{got['rate']:>9,.0f}{got['p50']:>9.1f}{got['p95']:>9.1f}"
              f"{got['p99']:>9.1f}{got['max']:>9.1f}{got['errors']:>8.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
