"""A pg_auto_failover formation of the tests' own: a monitor and two PostgreSQL 15 nodes with
synchronous replication, on free loopback ports in a temporary folder, run by Debian's
`pg_autoctl` as the service account, and removed afterwards, also when the setup fails.

The monitor's health checks are tuned for a test: a node whose keeper has not reported for
3 s and whose server fails a health check is unhealthy, and a primary that cannot be reached
is given 5 s to demote itself (`primary_demote_timeout`) before its standby is promoted. The
keepers' `network_partition_timeout` is 3 s, below that, so a primary cut off from the
monitor and its standby stops taking writes before the standby takes over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.servers import free_port, running, service_account, service_folder, wait_gone

PG_AUTOCTL = Path("/usr/bin/pg_autoctl")
PG_CTL = Path("/usr/lib/postgresql/15/bin/pg_ctl")
NODES = ("node1", "node2")

UNHEALTHY_MS = 3000  # pgautofailover.node_considered_unhealthy_timeout (default 20 s)
DEMOTE_MS = 5000  # pgautofailover.primary_demote_timeout (default 30 s)
MONITOR_SETTINGS = (
    "pgautofailover.health_check_period = 1000",
    "pgautofailover.health_check_timeout = 1000",
    "pgautofailover.health_check_max_retries = 1",
    "pgautofailover.health_check_retry_delay = 500",
    f"pgautofailover.node_considered_unhealthy_timeout = {UNHEALTHY_MS}",
    f"pgautofailover.primary_demote_timeout = {DEMOTE_MS}",
    "fsync = off",
)
KEEPER_SETTINGS = (
    ("timeout.network_partition_timeout", "3"),
    ("timeout.prepare_promotion_catchup", "5"),
    ("timeout.postgresql_restart_failure_timeout", "5"),
)
HEALTHY = {"primary", "secondary"}


@dataclass
class Formation:
    directory: Path
    monitor_port: int
    ports: dict[str, int] = field(default_factory=dict)
    keepers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: list[subprocess.Popen[bytes]] = field(default_factory=list)  # switchovers

    @property
    def monitor_url(self) -> str:
        return (
            f"postgresql://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover"
            "?sslmode=disable"
        )

    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[n]}" for n in NODES)

    def url(self, database: str = "postgres", attrs: str = "read-write") -> str:
        """Both nodes in one URL; asyncpg and libpq take the first that matches `attrs`."""
        return (
            f"postgresql://postgres@{self.hosts()}/{database}"
            f"?target_session_attrs={attrs}&sslmode=disable"
        )

    def node_url(self, node: str, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports[node]}/{database}?sslmode=disable"

    def states(self) -> dict[str, tuple[str, str]]:
        """Each node's reported and goal state, as the monitor has them."""
        with psycopg.connect(self.monitor_url, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node"
            ).fetchall()
        return {name: (reported, goal) for name, reported, goal in rows}

    def primary(self) -> str:
        """The node that is the primary now: settled as primary, or as the wait_primary of a
        formation whose other node is gone (a dead node's last report stays as it was)."""
        (name,) = [
            n
            for n, (reported, goal) in self.states().items()
            if reported == goal and reported in ("primary", "wait_primary")
        ]
        return name

    def wait_healthy(self, timeout: float = 60.0) -> str:
        """Waits, bounded, for one primary and one secondary, both settled; returns the
        primary's name."""
        deadline = time.monotonic() + timeout
        states: dict[str, tuple[str, str]] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                states = self.states()
                settled = all(reported == goal for reported, goal in states.values())
                if settled and {r for r, _ in states.values()} == HEALTHY and len(states) == 2:
                    return self.primary()
            time.sleep(0.1)
        pytest.fail(f"the formation did not settle in {timeout:.0f} s: {states}\n{self.logs()}")

    def kill(self, node: str) -> None:
        """kill -9 of the node's keeper, its services and its postmaster (one process group)."""
        keeper = self.keepers[node]
        os.killpg(keeper.pid, signal.SIGKILL)
        keeper.wait(timeout=10)
        del self.keepers[node]
        pid_file = self.directory / node / "postmaster.pid"
        if pid_file.exists():
            wait_gone(int(pid_file.read_text().split()[0]))

    def switchover(self) -> subprocess.Popen[bytes]:
        """`pg_autoctl perform switchover`, started; the caller waits for it (teardown stops
        it if the caller did not)."""
        process = self._autoctl_process(
            "switchover.log",
            "perform", "switchover", "--pgdata", str(self.directory / NODES[0]), "--wait", "60",
        )  # fmt: skip
        self.commands.append(process)
        return process

    def start_keeper(self, name: str) -> None:
        self.keepers[name] = self._autoctl_process(
            f"{name}.log", "run", "--pgdata", str(self.directory / name)
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            for log in sorted(self.directory.glob("*.log"))
        )

    def _environment(self) -> dict[str, str]:
        # pg_autoctl keeps its configuration and state under the XDG folders: here, ours.
        folders = {
            f"XDG_{kind}": str(self.directory / kind.lower())
            for kind in ("CONFIG_HOME", "DATA_HOME", "RUNTIME_DIR")
        }
        path = os.environ.get("PATH", "/usr/bin:/bin")
        return {"PATH": path, "HOME": str(self.directory), "LANG": "C.UTF-8", **folders}

    def _autoctl_process(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        account = service_account()
        with (self.directory / log).open("ab") as out:
            return subprocess.Popen(
                [str(PG_AUTOCTL), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self._environment(),
                start_new_session=True,  # a process group of its own, to kill as one
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )

    def autoctl(self, *args: str) -> None:
        """Runs a pg_autoctl command to its end; a failure fails the test with its output."""
        process = self._autoctl_process("commands.log", *args)
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"pg_autoctl {' '.join(args)} took over 120 s\n{self.logs()}")
        if code != 0:
            pytest.fail(f"pg_autoctl {' '.join(args)} exited {code}\n{self.logs()}")


@contextlib.contextmanager
def formation() -> Iterator[Formation]:
    """A monitor and two nodes, settled as primary and secondary; stopped (SIGTERM, then
    SIGKILL of each process group) and removed on the way out."""
    if not PG_AUTOCTL.exists() or not PG_CTL.exists():
        pytest.fail(
            "pg_auto_failover for PostgreSQL 15 is missing: run make install "
            "(Debian: apt-get install pg-auto-failover-cli postgresql-15-auto-failover)"
        )
    with service_folder("stratus_formation_") as directory:
        found = Formation(directory, free_port())
        try:
            _create(found)
            yield found
        finally:
            _stop(found)


def _create(found: Formation) -> None:
    monitor = str(found.directory / "monitor")
    common = ("--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", str(PG_CTL))
    found.autoctl("create", "monitor", "--pgdata", monitor, "--pgport", str(found.monitor_port),
                  *common)  # fmt: skip
    found.autoctl("config", "set", "--pgdata", monitor, "postgresql.listen_addresses", "127.0.0.1")
    with (found.directory / "monitor" / "postgresql.conf").open("a") as conf:
        conf.write("\n".join(MONITOR_SETTINGS) + "\n")
    found.start_keeper("monitor")
    for name in NODES:
        found.ports[name] = free_port()
        data = str(found.directory / name)
        found.autoctl("create", "postgres", "--pgdata", data, "--pgport", str(found.ports[name]),
                      "--listen", "127.0.0.1", "--name", name, "--monitor", found.monitor_url,
                      *common)  # fmt: skip
        for key, value in KEEPER_SETTINGS:
            found.autoctl("config", "set", "--pgdata", data, key, value)
        found.start_keeper(name)
    found.wait_healthy()


def _stop(found: Formation) -> None:
    """Every process group of the formation: SIGTERM (pg_autoctl stops its server), then
    SIGKILL of what is left after 10 s; then any postmaster still running (one left by a
    failed `create`) by its PID."""
    groups = [*found.keepers.values(), *found.commands]
    for process in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in groups:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    for data in ("monitor", *NODES):
        pid_file = found.directory / data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            wait_gone(pid)
            if running(pid) and _serves(pid, found.directory / data):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid)


def _serves(pid: int, data: Path) -> bool:
    """Whether the process is the postmaster of that data folder (not a reused PID)."""
    try:
        return str(data) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
