"""`dagster dev` (the webserver and the daemon) on a PostgreSQL instance, driven as a user drives it: a
backfill of the organisations it knows launched from the UI, the discovery sensor switched on in the UI
(it finds the one it did not know), the daily schedule's missed 06:00 tick. Every run, partition and tick is read back
from PostgreSQL."""

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
import pytest
from dagster._core.remote_origin import RemoteInstigatorOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    TickStatus,
)

from pipelines.app.sync import INSTANCE_SETTINGS
from pipelines.definitions import defs
from pipelines.defs.partitions import organisations_partitions
from tests.conftest import free_port
from tests.operations.test_run_monitoring import start, wait_for
from tests.pipeline.conftest import SUMO_IDS
from tests.postgres import private_postgres

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = {"repositoryLocationName": "pipelines.definitions", "repositoryName": "__repository__"}
START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {
  __typename ... on PythonError { message } } }"""
BACKFILL = """mutation($partitions: [String!], $assets: [AssetKeyInput!]) {
  launchPartitionBackfill(backfillParams: {assetSelection: $assets, partitionNames: $partitions}) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
# Every organisation-partitioned asset: what "Materialize all" on the partitioned group selects.
GRAPH = defs().resolve_asset_graph()
PARTITIONED = [{"path": k.path} for k in GRAPH.get_all_asset_keys() if GRAPH.get(k).partitions_def is not None]
ENDED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def graphql(port: int, query: str, variables: dict) -> dict:
    answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=60)
    return next(iter(answer.json()["data"].values()))


def ended(instance: dg.DagsterInstance, tags: dict[str, str], count: int) -> list[dg.DagsterRun] | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags=tags))
    return runs if len(runs) == count and all(r.status in ENDED for r in runs) else None


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(INSTANCE_SETTINGS.with_name("dagster-postgres.yaml"), home / "dagster.yaml")
    return home


def test_backfill_sensor_and_schedule_run_through_the_daemon_on_postgres(home: Path, tmp_path: Path) -> None:
    with private_postgres("dagster") as urls:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
        env.update(DAGSTER_HOME=str(home), DAGSTER_PG_URL=urls["dagster"], PYTHONPATH=str(ROOT),
                   WHITESPACE_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
                   WHITESPACE_LOCK_WAIT_SECONDS="0",  # only the pool and the writer turn may keep writers apart
                   WHITESPACE_SANDBOX="1",  # trying dagster dev without an account, as the README says
                   WHITESPACE_SANDBOX_SCALE="0.1")  # each run serves its own sandbox: a tenth of the book
        port = free_port()
        dev = start([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                    tmp_path / "dagster-dev.log", cwd=ROOT, env=env)
        os.environ["DAGSTER_PG_URL"] = urls["dagster"]  # this process reads the same instance
        known, unknown = SUMO_IDS[:2], SUMO_IDS[2]
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                instance.add_dynamic_partitions(organisations_partitions.name, known)

                def launch() -> dict | None:
                    try:
                        return graphql(port, BACKFILL, {"partitions": known, "assets": PARTITIONED})
                    except (httpx.TransportError, KeyError, TypeError, ValueError):
                        return None
                launched = wait_for("dagster dev to launch the backfill", launch, 180, dev)
                assert launched["__typename"] == "LaunchBackfillSuccess", launched
                backfill = wait_for("the backfill's run", lambda: ended(  # one run: the single-run policy
                    instance, {"dagster/backfill": launched["backfillId"]}, 1), 300, dev)

                engine = [e.message for e in instance.all_logs(backfill[0].run_id) if e.dagster_event
                          and e.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT]
                assert any(m.startswith("Executing steps in process") for m in engine), engine  # no process per step
                started = graphql(port, START_SENSOR, {"s": {**LOCATION, "sensorName": "organisations_sensor"}})
                assert started["__typename"] == "Sensor", started
                # its first tick discovers the organisation nobody added and requests that one's first sync
                first = wait_for("the sensor's first sync", lambda: ended(
                    instance, {"dagster/sensor_name": "organisations_sensor"}, 1), 300, dev)
                assert sorted(instance.get_dynamic_partitions(organisations_partitions.name)) == sorted(SUMO_IDS)

                _switched_on_yesterday(instance, "daily_sync")
                tick = wait_for("the schedule's tick", lambda: _missed_tick(instance), 180, dev)
        finally:
            os.environ.pop("DAGSTER_PG_URL", None)
            os.killpg(dev.pid, signal.SIGTERM)
            try:
                dev.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
    log = (tmp_path / "dagster-dev.log").read_text()[-3000:]
    assert [r.status for r in backfill + first] == [dg.DagsterRunStatus.SUCCESS] * 2, log
    assert (backfill[0].tags["dagster/asset_partition_range_start"],
            backfill[0].tags["dagster/asset_partition_range_end"]) == (known[0], known[-1])
    assert first[0].tags["dagster/partition"] == unknown
    # the tick's change check found every organisation as the backfill left it
    assert tick.status == TickStatus.SKIPPED, (tick.status, tick.error, log)
    assert tick.skip_reason == f"nothing changed in {len(SUMO_IDS)} organisations"
    assert not list(home.glob("**/*.db")), "nothing of the instance in SQLite files"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        seen = {r[0] for r in conn.execute("SELECT DISTINCT user_id FROM risk_visibility").fetchall()}
    assert seen == set(SUMO_IDS)


def _switched_on_yesterday(instance: dg.DagsterInstance, name: str) -> None:
    """The schedule as the UI leaves it when switched on 25 hours ago, with the daemon down at its 06:00
    tick since: the daemon, seeing it for the first time, evaluates that missed tick (as after an
    outage). Switching it on now and moving its start back would race the daemon, which keeps in memory
    when it last looked at a schedule and would wait for tomorrow's tick. The origin is the code
    location's, as the sensor switched on from the UI has it."""
    [sensor] = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
                if s.name == "organisations_sensor"]
    schedule = defs().resolve_schedule_def(name)
    instance.add_instigator_state(InstigatorState(
        RemoteInstigatorOrigin(sensor.origin.repository_origin, name), InstigatorType.SCHEDULE,
        InstigatorStatus.RUNNING, ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=time.time() - 90_000)))


def _missed_tick(instance: dg.DagsterInstance):
    """The daily schedule's 06:00 tick, once it has ended."""
    [state] = [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
               if s.name == "daily_sync"]
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
    done = [t for t in ticks if t.status != TickStatus.STARTED]
    return done[0] if done else None
