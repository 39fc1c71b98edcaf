"""Dagster's instance in PostgreSQL (pipelines/app/dagster-postgres.yaml), on a private server: a sync
records its runs there, the warehouse pool is there, and its one slot goes to exactly one claimant
however many ask at the same moment (the race SQLite's storage can lose cannot happen)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.app.sync import INSTANCE_SETTINGS
from pipelines.defs.partitions import WAREHOUSE_POOL
from tests.postgres import private_postgres

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SETTINGS = INSTANCE_SETTINGS.with_name("dagster-postgres.yaml")
CLAIMANTS = 8


@pytest.fixture(scope="module")
def postgres():
    with private_postgres("dagster") as urls:
        yield urls["dagster"]


@pytest.fixture
def home(tmp_path: Path, postgres: str, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(POSTGRES_SETTINGS, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", postgres)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_a_sync_records_its_runs_in_postgres(home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    out = subprocess.run([str(Path(sys.executable).with_name("whitespace-etl")), "demo", "--scale", "0.1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not list(home.glob("**/*.db")), "nothing of the instance in SQLite files"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_runs()
        assert {r.job_name for r in runs} == {"reference_data", "sync_organisation", "mi_report", "build_marts"}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs) and len(runs) == 6
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.limit == 1 and info.claimed_slots == []


def _claim(home: str, url: str, n: int, start, results) -> None:
    os.environ.update(DAGSTER_HOME=home, DAGSTER_PG_URL=url)
    with dg.DagsterInstance.from_config(home) as instance:
        instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)  # connected before the start
        start.wait()
        status = instance.event_log_storage.claim_concurrency_slot(WAREHOUSE_POOL, f"run-{n}", "risk_tables")
        results.put(status.slot_status.value)


def test_the_pool_slot_goes_to_exactly_one_of_many_at_once(home: Path, postgres: str) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(CLAIMANTS), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(home), postgres, n, start, results)) for n in range(CLAIMANTS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    statuses = sorted(results.get(timeout=10) for _ in procs)
    assert statuses.count("CLAIMED") == 1, statuses
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots) == 1
