"""Dashboard fixtures: a synced warehouse with its marts, and a process that holds its write lock."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOLD_WRITER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("BEGIN TRANSACTION")
conn.execute("CREATE TEMP TABLE _busy AS SELECT 1")
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def writer_holding(db_path: Path) -> Iterator[None]:
    """Another process with the warehouse open for writing, as a sync has it while it loads."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(db_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def synced(tmp_path_factory):
    """The sandbox synced for every organisation, its MI report loaded and the marts built: the demo's
    state on a quarter of its book. Made once for the dashboard tests, which only read it (and write
    nothing a later test looks at)."""
    from sandbox import SandboxServer
    from tests.pipeline.conftest import Pipeline

    with SandboxServer(seed=11, scale=0.25) as server, pytest.MonkeyPatch.context() as env:
        env.delenv("WHITESPACE_USER_IDS", raising=False)
        pipeline = Pipeline(server, tmp_path_factory.mktemp("dashboard"), env)
        pipeline.start_from("marts")
    return pipeline


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
