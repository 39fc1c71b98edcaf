"""Whole syncs as processes, killed at random points and inside a warehouse step."""

from __future__ import annotations

import os
import random
import signal
import time

from tests.reliability.conftest import fingerprint, integrity_problems
from tests.reliability.processes import env_for, finish, start_sync

KILL_ROUNDS = int(os.environ.get("WHITESPACE_KILL_ROUNDS", "4"))


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
    import dagster as dg

    env = env_for(server, tmp_path)
    proc = start_sync(env, tmp_path)
    deadline = time.monotonic() + 120
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        while not instance.event_log_storage.get_concurrency_run_ids():
            assert proc.poll() is None and time.monotonic() < deadline, "no warehouse step started"
            time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    code, text = finish(start_sync(env, tmp_path), timeout=240)
    assert code == 0, text
    assert "left behind by a killed process" in text
    assert fingerprint(tmp_path / "warehouse.duckdb") == clean["fingerprint"]
