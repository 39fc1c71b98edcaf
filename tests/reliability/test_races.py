"""Whole syncs as processes, racing each other and beside a BI reader that holds the warehouse open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from tests.reliability.conftest import fingerprint
from tests.reliability.processes import env_for, finish, start_sync


def test_two_syncs_at_once_both_finish_with_the_clean_result(server, clean, tmp_path) -> None:
    env = env_for(server, tmp_path)
    first, second = start_sync(env, tmp_path), start_sync(env, tmp_path)
    results = [finish(first), finish(second)]
    for code, text in results:
        assert code == 0, text
    assert fingerprint(tmp_path / "warehouse.duckdb") == clean["fingerprint"]


HOLD = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
conn.execute("SELECT count(*) FROM risks").fetchall()
print("holding", flush=True)
sys.stdin.readline()  # until the test says so
"""


def hold_open(db_path: Path) -> subprocess.Popen:
    """A BI tool holding the warehouse open (read-only) until a line arrives on its standard input."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_bi_reader_makes_the_sync_wait_not_fail(server, clean, tmp_path) -> None:
    env = env_for(server, tmp_path)
    assert finish(start_sync(env, tmp_path))[0] == 0
    reader = hold_open(tmp_path / "warehouse.duckdb")
    code, text = finish(start_sync(env, tmp_path))
    assert code == 0, text
    assert "0 of 4 lists changed" in text and "waiting" not in text, "nothing to write: no need to wait"
    sync = start_sync(env, tmp_path, "--all")
    waited = ""
    for line in sync.stderr:  # the sync says it waits; only then does the reader let go
        waited += line
        if "in use by another process; waiting" in line:
            break
    reader.communicate("done\n", timeout=30)
    code, text = finish(sync)
    assert code == 0, waited + text
    assert "in use by another process; waiting" in waited
    assert fingerprint(tmp_path / "warehouse.duckdb") == clean["fingerprint"]


def test_a_reader_that_never_lets_go_gives_a_clear_failure(server, clean, tmp_path) -> None:
    env = env_for(server, tmp_path)
    assert finish(start_sync(env, tmp_path))[0] == 0
    before = fingerprint(tmp_path / "warehouse.duckdb")
    reader = hold_open(tmp_path / "warehouse.duckdb")
    try:
        code, text = finish(start_sync({**env, "WHITESPACE_LOCK_WAIT_SECONDS": "1"}, tmp_path, "--all"))
    finally:
        reader.kill()
        reader.wait(timeout=30)
    assert code != 0
    assert "is locked by another process" in text and "Traceback" not in text, text
    assert text.count("FAILED") == 1 and "Stopped:" in text, "the first locked run stops the sync"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True):
        pass
    assert fingerprint(tmp_path / "warehouse.duckdb") == before
