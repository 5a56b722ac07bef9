"""The tests' own servers leave nothing behind: a cluster whose setup fails and one that ran
are both removed, folder and processes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests import servers
from tests.servers import LegServers


def _leftovers() -> set[Path]:
    """This process's cluster folders (another pytest may make and remove its own meanwhile)."""
    return set(Path(tempfile.gettempdir()).glob(f"stratus_cluster_{os.getpid()}_*"))


def test_a_cluster_whose_start_fails_leaves_no_folder(
    test_servers: LegServers, pg_leg: str
) -> None:
    before = _leftovers()
    with (
        pytest.raises(pytest.fail.Exception, match="pg_ctl"),
        servers.private_cluster(test_servers.bindir(pg_leg), "no_such_setting = 1"),
    ):
        raise AssertionError("the cluster started with a bad setting")
    assert _leftovers() == before


def test_a_cluster_that_ran_is_stopped_and_removed(test_servers: LegServers, pg_leg: str) -> None:
    with servers.private_cluster(test_servers.bindir(pg_leg)) as cluster:
        pid = cluster.postmaster_pid()
        assert servers.running(pid)
        assert servers.port_answers("127.0.0.1", cluster.port)
    assert not cluster.directory.exists()
    assert not servers.running(pid)


def test_pgbouncer_is_stopped_and_removed(pgbouncer_server: str) -> None:
    before = set(Path(tempfile.gettempdir()).glob("stratus_pgbouncer_*"))
    with servers.pgbouncer(pgbouncer_server) as port:
        assert servers.port_answers("127.0.0.1", port)
        (directory,) = set(Path(tempfile.gettempdir()).glob("stratus_pgbouncer_*")) - before
        pid = int((directory / "pid").read_text())
    assert not directory.exists()
    assert not servers.running(pid)
