"""A backfill of every organisation launched as the UI launches it: `dagster dev`, GraphQL, the daemon."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import httpx

from pipelines.definitions import defs
from pipelines.defs.partitions import organisations_partitions
from tests.conftest import free_port
from tests.pipeline.conftest import SUMO_IDS

ROOT = Path(__file__).resolve().parents[2]
BACKFILL = """
mutation($partitions: [String!], $assets: [AssetKeyInput!]) {
  launchPartitionBackfill(backfillParams: {assetSelection: $assets, partitionNames: $partitions}) { __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } }
}
"""
# Every organisation-partitioned asset: what "Materialize all" on the partitioned group selects.
GRAPH = defs().resolve_asset_graph()
PARTITIONED = [{"path": k.path} for k in GRAPH.get_all_asset_keys() if GRAPH.get(k).partitions_def is not None]
RUNS = "{ runsOrError { ... on Runs { results { status tags { key value } } } } }"



def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    return r.json()["data"]


def test_backfill_of_all_organisations_from_the_ui_succeeds(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)
    db_path = tmp_path / "warehouse.duckdb"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env.update(DAGSTER_HOME=str(home), PYTHONPATH=str(ROOT), WHITESPACE_WAREHOUSE=str(db_path),
               WHITESPACE_LOCK_WAIT_SECONDS="0",  # only the pool may keep the writers apart
               WHITESPACE_SANDBOX="1",  # trying dagster dev without an account, as the README says
               WHITESPACE_SANDBOX_SCALE="0.2")  # each run serves its own sandbox: a fifth of the book
    dagster = Path(sys.executable).with_name("dagster")
    log = tmp_path / "dagster-dev.log"  # a file, not a pipe: a pipe nobody reads fills and stalls the runs
    proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                launched = _graphql(port, BACKFILL, {"partitions": SUMO_IDS, "assets": PARTITIONED})[
                    "launchPartitionBackfill"]
                break
            except (httpx.TransportError, KeyError, TypeError, ValueError):
                assert time.monotonic() < deadline, "dagster dev did not come up"
                time.sleep(1)
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.monotonic() + 300
        while True:
            runs = [r for r in _graphql(port, RUNS)["runsOrError"]["results"]
                    if any(t["key"] == "dagster/backfill" for t in r["tags"])]
            done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
            if len(done) == len(SUMO_IDS):
                break
            assert time.monotonic() < deadline, f"backfill still running: {[r['status'] for r in runs]}"
            time.sleep(2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert [r["status"] for r in done] == ["SUCCESS"] * len(SUMO_IDS)
    with duckdb.connect(str(db_path), read_only=True) as conn:
        seen = {r[0] for r in conn.execute("SELECT DISTINCT user_id FROM risk_visibility").fetchall()}
    assert seen == set(SUMO_IDS)
