"""Whole syncs as processes: killed at random points, run twice at once, and beside a BI reader."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer
from tests.reliability.conftest import fingerprint, integrity_problems

ROOT = Path(__file__).resolve().parents[2]
KILL_ROUNDS = int(os.environ.get("WHITESPACE_KILL_ROUNDS", "4"))


@pytest.fixture(scope="module")
def server():
    with SandboxServer(seed=21, scale=0.25) as s:  # processes killed and racing, not volume
        yield s


def env_for(server: SandboxServer, folder: Path, **extra: str) -> dict[str, str]:
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env.update(PYTHONPATH=str(ROOT), DAGSTER_HOME=str(home), WHITESPACE_WAREHOUSE=str(folder / "warehouse.duckdb"),
               WHITESPACE_SYNC_URL=server.sync_url, WHITESPACE_BUCKET=BUCKET, WHITESPACE_API_URL=server.api_url,
               WHITESPACE_REFRESH_TOKEN=SUMO_REFRESH_TOKEN, WHITESPACE_USER_NAME=SUMO_USER_NAME, **extra)
    return env


def start_sync(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.app.cli", "sync", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: int = 300) -> tuple[int, str]:
    """The sync's exit code and output; one that has not ended after ``timeout`` s (a bound for a busy
    machine) is killed and the test fails with what it printed so far."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the sync did not end within {timeout} s; it printed:\n{out}{err}") from None
    return proc.returncode, out + err


@pytest.fixture(scope="module")
def clean(server, tmp_path_factory) -> dict:
    """The fingerprint of an undisturbed sync, and how long it took."""
    folder = tmp_path_factory.mktemp("clean")
    started = time.monotonic()
    code, text = finish(start_sync(env_for(server, folder), folder))
    assert code == 0, text
    return {"fingerprint": fingerprint(folder / "warehouse.duckdb"), "seconds": time.monotonic() - started}


def test_sync_killed_at_random_points_always_recovers(server, clean, tmp_path) -> None:
    rng = random.Random(int(os.environ.get("WHITESPACE_KILL_SEED", "7")))
    env = env_for(server, tmp_path)
    db_path = tmp_path / "warehouse.duckdb"
    for round_ in range(KILL_ROUNDS):
        proc = start_sync(env, tmp_path)
        time.sleep(rng.uniform(0.5, clean["seconds"]))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if db_path.exists():
            assert integrity_problems(db_path) == [], f"round {round_}"
    code, text = finish(start_sync(env, tmp_path))
    assert code == 0, text
    assert integrity_problems(db_path) == []
    assert fingerprint(db_path) == clean["fingerprint"]


def test_a_sync_killed_inside_a_warehouse_step_does_not_block_the_next(server, clean, tmp_path) -> None:
    """SIGKILL while a run holds the warehouse pool's slot: the next sync frees it and finishes."""
    from pipelines.app.sync import open_instance

    env = env_for(server, tmp_path)
    # The instance's SQLite storage is created before the sync starts, as the sync creates it (under its
    # lock): two processes creating it at once would both stamp its schema version.
    with open_instance(Path(env["DAGSTER_HOME"])) as instance:
        proc = start_sync(env, tmp_path)
        deadline = time.monotonic() + 120
        while not instance.event_log_storage.get_concurrency_run_ids():
            assert proc.poll() is None and time.monotonic() < deadline, "no warehouse step started"
            time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    code, text = finish(start_sync(env, tmp_path), timeout=240)
    assert code == 0, text
    assert "left behind by a killed process" in text
    assert fingerprint(tmp_path / "warehouse.duckdb") == clean["fingerprint"]


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
