"""Dagster's instance in PostgreSQL (pipelines/app/dagster-postgres.yaml), on a private server: a sync
records its runs there, the warehouse pool is there, and writers that claim its slot at the same
moment never write the warehouse at the same time."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.app.sync import INSTANCE_SETTINGS
from pipelines.defs.partitions import WAREHOUSE_POOL
from pipelines.warehouse import db
from tests.postgres import private_postgres

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SETTINGS = INSTANCE_SETTINGS.with_name("dagster-postgres.yaml")
CLAIMANTS = 8


@pytest.fixture(scope="module")
def postgres():
    with private_postgres("dagster", "team") as urls:
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
    out = subprocess.run([str(Path(sys.executable).with_name("whitespace-etl")), "demo", "--scale", "0.05"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not list(home.glob("**/*.db")), "nothing of the instance in SQLite files"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_runs()
        assert {r.job_name for r in runs} == {"reference_data", "sync_organisation", "mi_report_and_marts"}
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs) and len(runs) == 3  # the organisations: one run
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert info.limit == 1 and info.claimed_slots == []


def _claim_and_write(home: str, url: str, warehouse: str, n: int, start, inside, overlaps, results) -> None:
    """A warehouse writer as a run step is one: claim the pool's slot, then write in the writer turn."""
    os.environ.update(DAGSTER_HOME=home, DAGSTER_PG_URL=url)
    with dg.DagsterInstance.from_config(home) as instance:
        storage = instance.event_log_storage
        storage.get_concurrency_info(WAREHOUSE_POOL)  # connected before the start
        start.wait()
        status = storage.claim_concurrency_slot(WAREHOUSE_POOL, f"run-{n}", "risk_tables").slot_status.value
        results.put(status)
        if status != "CLAIMED":
            return
        with db.writer_turn(warehouse):
            with inside.get_lock():
                inside.value += 1
                overlaps.value = max(overlaps.value, inside.value)
            with duckdb.connect(warehouse) as conn:  # a real write while holding the turn
                conn.execute("CREATE TABLE IF NOT EXISTS writes (n INTEGER)")
                conn.execute("INSERT INTO writes VALUES (?)", [n])
            with inside.get_lock():
                inside.value -= 1
        storage.free_concurrency_slot_for_step(f"run-{n}", "risk_tables")


def test_writers_are_kept_apart_when_many_claim_the_pool_at_once(home: Path, postgres: str, tmp_path: Path) -> None:
    """Dagster's pool claim is not atomic on PostgreSQL either (dagster-postgres runs it in autocommit,
    so its SELECT ... FOR UPDATE SKIP LOCKED holds no lock past the statement: seen here, 3 of 8
    simultaneous claimants got the one slot). The writer turn (a file lock) is what keeps the writers
    of one warehouse apart; this checks that it does, whatever the pool answered."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
    warehouse = str(tmp_path / "warehouse.duckdb")
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(CLAIMANTS), ctx.Queue()
    inside, overlaps = ctx.Value("i", 0), ctx.Value("i", 0)
    procs = [ctx.Process(target=_claim_and_write, args=(str(home), postgres, warehouse, n, start, inside, overlaps,
                                                      results)) for n in range(CLAIMANTS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    statuses = [results.get(timeout=10) for _ in procs]
    claimed = statuses.count("CLAIMED")
    assert claimed >= 1 and overlaps.value == 1, (statuses, overlaps.value)
    with duckdb.connect(warehouse, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM writes").fetchone()[0] == claimed


def test_a_team_instance_without_pool_settings_gets_the_warehouse_pool(tmp_path: Path, postgres: str,
                                                                        monkeypatch) -> None:
    """A team's own dagster.yaml (storage only) is used as it is; the sync adds the pool's limit to it."""
    from pipelines.app.sync import open_instance

    home = tmp_path / "team"
    home.mkdir()
    settings = "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(settings)
    monkeypatch.setenv("DAGSTER_PG_URL", postgres.replace("/dagster", "/team"))
    with open_instance(home) as instance:
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
    assert (info.limit, info.slot_count) == (1, 1)
    assert (home / "dagster.yaml").read_text() == settings, "the team's settings are not rewritten"
