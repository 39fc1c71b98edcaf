"""Partitions launched together must all succeed: DuckDB has one writer, the instance's pool says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.defs.partitions import organisations_partitions
from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer
from tests.pipeline.conftest import SUMO_IDS

ROOT = Path(__file__).resolve().parents[2]
RUN_ONE = """
import sys, dagster as dg
from pipelines.definitions import defs
defs = defs()
with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def("sync_organisation").execute_in_process(
        instance=instance, partition_key=sys.argv[1], raise_on_error=False)
    failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    print("OK" if result.success else "FAILED " + " | ".join(failures))
"""


def test_concurrent_partition_runs_all_succeed(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    db_path = tmp_path / "warehouse.duckdb"
    with SandboxServer(seed=3, scale=0.25) as server:  # concurrency, not volume: a quarter of the book
        env = {**os.environ, "DAGSTER_HOME": str(home), "WHITESPACE_WAREHOUSE": str(db_path),
               "WHITESPACE_SYNC_URL": server.sync_url, "WHITESPACE_BUCKET": BUCKET,
               "WHITESPACE_API_URL": server.api_url, "WHITESPACE_REFRESH_TOKEN": SUMO_REFRESH_TOKEN,
               "WHITESPACE_USER_NAME": SUMO_USER_NAME,
               # No waiting on the file lock: only the pool may keep the writers apart.
               "WHITESPACE_LOCK_WAIT_SECONDS": "0"}
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)
        # every organisation at once, and one of them twice (the same partition in two runs at once)
        procs = [subprocess.Popen([sys.executable, "-c", RUN_ONE, mu], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for mu in [*SUMO_IDS, SUMO_IDS[0]]]
        outputs = [p.communicate(timeout=300) for p in procs]
    for out, err in outputs:
        assert out.strip().endswith("OK"), out + err[-3000:]
    with duckdb.connect(str(db_path), read_only=True) as conn:
        rows = dict(conn.execute("SELECT user_id, count(*) FROM risk_visibility GROUP BY 1").fetchall())
    assert set(rows) == set(SUMO_IDS) and all(n > 50 for n in rows.values())


HOLD_WRITER = """
import sys, time
from pipelines.warehouse import db
with db.session(sys.argv[1]) as conn:
    conn.execute("CREATE TABLE held (n INTEGER)")
    conn.execute("INSERT INTO held VALUES (1)")
    print("writing", flush=True)
    time.sleep(1.5)
"""


def test_a_second_writer_waits_its_turn_without_waiting_on_duckdbs_lock(tmp_path: Path) -> None:
    """If the pool ever lets two writers through at once (two run processes claiming its one slot
    together on SQLite storage), the second waits for the first instead of failing on the file lock."""
    from pipelines.config import WarehouseConfig
    from pipelines.warehouse import db

    db_path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(db_path)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "writing"
    no_wait = WarehouseConfig(path=db_path, lock_wait_seconds=0)  # DuckDB's lock alone would fail at once
    with db.session(no_wait) as conn:
        assert conn.execute("SELECT n FROM held").fetchall() == [(1,)], "the first writer finished first"
    assert holder.wait(timeout=30) == 0
