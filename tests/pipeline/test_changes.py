"""The sync's change check: what is unchanged starts no run, what changed runs and is fetched once."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from models import MART_TABLES
from pipelines.app.sync import sync
from pipelines.client import WhitespaceClient
from pipelines.extract import changes
from sandbox import SandboxServer
from tests.conftest import settings_for
from tests.pipeline.conftest import SUMO_IDS, Pipeline, rows_of


class Synced:
    """``pipelines.app.sync.sync`` against the pipeline fixture, with what each call printed and did."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.lines: list[str] = []

    def __call__(self, everything: bool = False, **faults) -> dict[str, str]:
        self.lines.clear()
        self.pipeline.server.admin("reset")  # counters and faults
        if faults:
            self.pipeline.server.set_faults(**faults)
        outcomes = sync(self.pipeline.instance, self.pipeline.defs, log=self.lines.append, everything=everything)
        assert all(o.ok for o in outcomes), (outcomes, self.lines)
        return {o.label: o.note for o in outcomes}

    def runs(self) -> int:
        return len(self.pipeline.instance.get_runs())

    def requests(self) -> dict[str, int]:
        return {k: v for k, v in self.pipeline.server.stats().items() if k.startswith("GET /api/")}


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    """The pipeline fixture on a smaller sandbox: these tests sync several times each."""
    with SandboxServer(seed=11, scale=0.1) as server:
        yield Pipeline(server, tmp_path, monkeypatch)


@pytest.fixture
def synced(pipeline) -> Synced:
    run = Synced(pipeline)
    first = run()
    assert changes.UNCHANGED not in first.values(), "a first sync runs everything"
    return run


def partitions_of(run: dg.DagsterRun) -> list[str]:
    """The organisations an organisation run loaded: its partition, or its range of them."""
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    start, end = run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
    return SUMO_IDS[SUMO_IDS.index(start):SUMO_IDS.index(end) + 1]


def raw_files(pipeline) -> set[Path]:
    return {p for p in pipeline.raw_dir.rglob("*") if p.is_file()}


def api_truth(pipeline, user_id: str) -> set[tuple[str, str]]:
    with WhitespaceClient(settings_for(pipeline.server)) as client:
        return {(r["id"], r["rev"]) for r in client.for_user(user_id).risks()}


def test_a_resync_with_nothing_changed_starts_no_run_and_fetches_only_the_lists(synced) -> None:
    pipeline = synced.pipeline
    runs, files, counts = synced.runs(), raw_files(pipeline), pipeline.counts()
    notes = synced()
    assert set(notes.values()) == {changes.UNCHANGED}, synced.lines
    assert synced.runs() == runs, "no run was started"
    assert raw_files(pipeline) == files, "the identical answers were not kept a second time"
    assert pipeline.counts() == counts
    requests = synced.requests()
    assert requests["GET /api/risks"] == len(SUMO_IDS), "one list per organisation"
    assert not any("{id}" in k for k in requests), f"no contract or line set was fetched: {requests}"
    for mu in SUMO_IDS:  # the check is visible in Dagster as an observation of the partition
        [record] = pipeline.instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_risks"), asset_partitions=[mu]), limit=1).records
        meta = record.asset_observation.metadata
        assert meta["sha256"].value == pipeline.query("SELECT sha256 FROM sync_state WHERE user_id = ?", [mu])[0][0]


def test_what_changed_runs_once_and_the_warehouse_matches_the_api(synced) -> None:
    pipeline = synced.pipeline
    pipeline.server.advance(changed_fraction=0.02, new_roots=2, removed_fraction=0.01)
    before = {r.run_id for r in pipeline.instance.get_runs()}
    notes = synced()
    ran = [label for label, note in notes.items() if note != changes.UNCHANGED]
    assert "marts" in ran and len(ran) >= 2, notes
    new = [r for r in pipeline.instance.get_runs() if r.run_id not in before]
    organisations = [r for r in new if r.job_name == "sync_organisation"]
    loaded = [key for r in organisations for key in partitions_of(r)]
    assert len(loaded) == len(set(loaded)) == len([x for x in ran if x not in ("reference data", "MI report", "marts")])
    others = [x for x in ran if x in ("reference data", "MI report", "marts")]
    together = {"MI report", "marts"} <= set(others)  # the marts follow a changed MI report in its run
    assert len(new) - len(organisations) == len(others) - together
    assert together == any(r.job_name == "mi_report_and_marts" for r in new)
    assert synced.requests()["GET /api/risks"] == len(SUMO_IDS), "the runs loaded the lists the check fetched"
    for mu in SUMO_IDS:
        rows = pipeline.query("SELECT r.risk_id, r.rev FROM risk_visibility v JOIN risks r USING (risk_id) "
                              "WHERE v.user_id = ?", [mu])
        assert set(rows) == api_truth(pipeline, mu), f"{mu}: nothing lost, nothing stale"
    latest = pipeline.instance.get_latest_materialization_event(dg.AssetKey("raw_risks"))
    assert latest.asset_materialization.metadata["fetched_by"].value == "the sync's change check"
    assert set(synced().values()) == {changes.UNCHANGED}, "and then it is all in step"


def test_contracts_waiting_to_be_fetched_again_make_the_organisation_run(pipeline) -> None:
    run = Synced(pipeline)
    run(error_burst=10_000, error_status=400, only="/api/lines/IC")
    failed = pipeline.query("SELECT count(*) FROM detail_failures")[0][0]
    assert failed > 0
    notes = run()  # the platform answers again; the lists are the same as before
    assert all(notes[label] != changes.UNCHANGED for label in notes if label.startswith(("GAIL", "WHITE", "MCN"))), notes
    assert any("contracts or lines waiting" in line for line in run.lines), run.lines
    assert pipeline.query("SELECT count(*) FROM detail_failures")[0][0] == 0
    assert set(run().values()) == {changes.UNCHANGED}


def test_a_warehouse_that_lost_its_tables_is_reloaded_from_the_landed_answers(synced) -> None:
    pipeline = synced.pipeline
    counts = pipeline.counts()
    contracts = pipeline.query("SELECT count(*) FROM contracts")[0][0]
    pipeline.db_path.unlink()
    notes = synced()
    assert changes.UNCHANGED not in notes.values(), notes
    assert any("risk list not loaded yet" in line for line in synced.lines), synced.lines
    assert not any("{id}" in k for k in synced.requests()), "contracts already landed are loaded, not fetched"
    assert pipeline.counts() == counts
    assert pipeline.query("SELECT count(*) FROM contracts")[0][0] == contracts


def test_marts_are_rebuilt_when_their_export_is_missing_and_all_runs_when_asked(synced) -> None:
    pipeline = synced.pipeline
    (pipeline.db_path.parent / "marts" / f"{MART_TABLES[0]}.parquet").unlink()
    notes = synced()
    assert [label for label, note in notes.items() if note != changes.UNCHANGED] == ["marts"]
    assert (pipeline.db_path.parent / "marts" / f"{MART_TABLES[0]}.parquet").exists()
    runs = synced.runs()
    notes = synced(everything=True)
    assert changes.UNCHANGED not in notes.values()
    assert synced.runs() == runs + 1 + 2  # the organisations in one run; reference data; the MI report and the marts
    assert synced.requests()["GET /api/risks"] == len(SUMO_IDS), "forced runs fetch for themselves"


def test_marts_behind_a_load_another_instance_made_are_rebuilt(synced) -> None:
    """A second Dagster instance on the same warehouse (a ``dagster dev`` with a home of its own) loads
    the changed organisations and the MI report, and does not build the marts. This instance's own events still say its
    marts are newer than its loads, but the warehouse says they are older than its last load: the next
    sync finds every list unchanged and rebuilds the marts, which then are what a build of them makes."""
    from pipelines.defs.partitions import organisations_partitions

    pipeline = synced.pipeline
    pipeline.server.advance(changed_fraction=0.05, new_roots=3)
    other = dg.DagsterInstance.ephemeral()
    other.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)
    job = pipeline.defs.resolve_job_def("sync_organisation")
    for key in SUMO_IDS:
        assert job.execute_in_process(instance=other, partition_key=key).success
    assert pipeline.defs.resolve_job_def("mi_report").execute_in_process(instance=other).success
    assert_only_the_marts_are_rebuilt(synced)


def test_marts_of_a_restored_backup_taken_before_they_were_built_are_rebuilt(synced) -> None:
    """A backup of the warehouse file taken after the organisations and the MI report loaded and before
    the marts were built from them, restored once they were: this instance's events say its marts are
    newer than every load, and so does the file's newest load time, but the marts in the file are those
    of the loads before. The warehouse's own record of what its marts were built from says so: the next
    sync finds every list unchanged and rebuilds the marts."""
    pipeline = synced.pipeline
    pipeline.server.advance(changed_fraction=0.05, new_roots=3)
    for key in SUMO_IDS:
        assert pipeline.sync(key).success
    assert pipeline.mi().success
    backup = pipeline.db_path.with_name("backup.duckdb")
    shutil.copy(pipeline.db_path, backup)
    assert pipeline.marts().success
    shutil.copy(backup, pipeline.db_path)
    assert_only_the_marts_are_rebuilt(synced)


def test_parquet_exports_restored_from_before_the_last_build_are_written_again(synced) -> None:
    """The marts' Parquet folder restored from a backup taken before the last build (the warehouse file
    left as it is): every file is there, and the warehouse records marts built from every load, but BI
    reading those files reads the marts of the loads before. Each export carries the build it came from;
    the next sync finds them not this build's and builds the marts again, files included."""
    pipeline = synced.pipeline
    exports = pipeline.db_path.parent / "marts"
    backup = pipeline.db_path.parent / "marts-backup"
    shutil.copytree(exports, backup)
    pipeline.server.advance(changed_fraction=0.05, new_roots=3)
    assert synced()["marts"] != changes.UNCHANGED, "the marts of the changed loads"
    shutil.rmtree(exports)
    shutil.copytree(backup, exports)
    assert_only_the_marts_are_rebuilt(synced)
    with duckdb.connect() as conn:  # the files are the warehouse's marts again
        for table in MART_TABLES:
            exported = conn.execute(f"SELECT * FROM read_parquet('{exports / table}.parquet') ORDER BY ALL").fetchall()
            assert exported == pipeline.query(f"SELECT * FROM {table} ORDER BY ALL"), table


def test_marts_are_current_only_if_built_today_with_the_open_item_age_configured_and_exported_by_that_build(tmp_path) -> None:
    from pipelines.app.sync import marts_current
    from pipelines.config import WarehouseConfig
    from pipelines.defs.resources import for_warehouse
    from pipelines.warehouse import marts

    warehouse = for_warehouse(WarehouseConfig(path=tmp_path / "warehouse.duckdb", open_item_days=30))
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)  # midday: the day cannot change during the test
    clock = now.timestamp() + 60
    with duckdb.connect() as conn:
        for table in MART_TABLES:
            conn.execute(f"CREATE TABLE {table} AS SELECT 1 AS n")
        marts.export_parquet(conn, warehouse.marts_path(), marts.Built({}, now, 30))
    assert marts_current(warehouse, (now.timestamp(), 30), clock)
    assert not marts_current(warehouse, None, clock), "not built from every load the warehouse holds"
    assert not marts_current(warehouse, (now.timestamp(), 14), clock), "built with another open-item age"
    assert not marts_current(warehouse, (now.timestamp() - 86_400 * 1.5, 30), clock), "built another day: open-item ages count days"
    assert not marts_current(warehouse, (now.timestamp() + 1, 30), clock), "the files are of another build"
    (warehouse.marts_path() / f"{MART_TABLES[0]}.parquet").write_bytes(b"")
    assert not marts_current(warehouse, (now.timestamp(), 30), clock), "a Parquet file is unreadable"
    (warehouse.marts_path() / f"{MART_TABLES[0]}.parquet").unlink()
    assert not marts_current(warehouse, (now.timestamp(), 30), clock), "a Parquet file is missing"


def assert_only_the_marts_are_rebuilt(synced: Synced) -> None:
    """The next sync finds every list unchanged and rebuilds the marts, which then are, row for row, what
    a build of them makes."""
    pipeline = synced.pipeline
    notes = synced()
    assert all(note == changes.UNCHANGED for label, note in notes.items() if label != "marts"), notes
    assert notes["marts"] != changes.UNCHANGED, synced.lines

    def marts() -> dict[str, list[tuple]]:
        tables = rows_of(pipeline.db_path)  # without when they were built
        return {t: tables[t] for t in MART_TABLES}

    built = marts()
    pipeline.marts()
    assert marts() == built


def test_a_run_told_of_an_answer_that_is_not_the_newest_fetches_its_own(pipeline) -> None:
    pipeline.reference()
    config = {"ops": {"raw_risks": {"config": {"reuse_sha256": "0" * 64}}}}
    result = pipeline.defs.resolve_job_def("sync_organisation").execute_in_process(
        instance=pipeline.instance, partition_key=SUMO_IDS[0], run_config=config)
    [mat] = [m for m in result.asset_materializations_for_node("raw_risks")]
    assert mat.metadata["fetched_by"].value == "this run"
    assert pipeline.query("SELECT count(*) FROM risk_visibility")[0][0] > 0


def test_the_daily_schedule_requests_runs_only_for_what_changed(pipeline, tmp_path) -> None:
    from pipelines.defs.automation import daily_sync
    from pipelines.defs.partitions import organisations_partitions

    (tmp_path / "dagster").mkdir()
    pipeline.instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))  # a schedule needs a stored one
    pipeline.instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)
    Synced(pipeline)()

    def tick(day: int):
        when = dt.datetime(2026, 1, day, 6, tzinfo=dt.UTC)
        with dg.build_schedule_context(instance=pipeline.instance, scheduled_execution_time=when,
                                       repository_def=pipeline.defs.get_repository_def(),
                                       resources=pipeline.defs.resources) as context:
            return daily_sync.evaluate_tick(context)

    quiet = tick(5)
    assert not quiet.run_requests and "nothing changed in 3 organisations" in quiet.skip_message
    pipeline.server.advance(changed_fraction=0.02, new_roots=2)
    requests = tick(6).run_requests
    assert requests and {r.partition_key for r in requests} <= set(SUMO_IDS)
    job = pipeline.defs.resolve_job_def("sync_organisation")
    for request in requests:
        sha = request.run_config["ops"]["raw_risks"]["config"]["reuse_sha256"]
        result = job.execute_in_process(instance=pipeline.instance, partition_key=request.partition_key,
                                        run_config=request.run_config)
        [mat] = result.asset_materializations_for_node("raw_risks")
        assert mat.metadata["sha256"].value == sha and mat.metadata["fetched_by"].value == "the sync's change check"
    assert not tick(7).run_requests, "after those runs, nothing is left to do"


def test_the_marts_are_built_when_the_mi_report_fails_in_their_shared_run(synced, monkeypatch) -> None:
    """A changed MI report and the marts share a run; the MI load failing there skips the marts in it, so
    they run on their own (on the tables as they are), each with its own outcome, as separate runs did."""
    from pipelines.warehouse import mireport

    pipeline = synced.pipeline
    pipeline.server.advance(changed_fraction=0.05, new_roots=2)

    def broken(*_args, **_kwargs):
        raise RuntimeError("the MI report's load broke")

    monkeypatch.setattr(mireport, "load_pending", broken)
    before = {r.run_id for r in pipeline.instance.get_runs()}
    outcomes = {o.label: o for o in sync(pipeline.instance, pipeline.defs, log=synced.lines.append)}
    assert not outcomes["MI report"].ok and "the MI report's load broke" in outcomes["MI report"].note
    assert outcomes["marts"].ok, synced.lines
    jobs = [r.job_name for r in pipeline.instance.get_runs() if r.run_id not in before]
    assert "mi_report_and_marts" in jobs and "build_marts" in jobs, jobs
    built = pipeline.instance.get_latest_materialization_event(dg.AssetKey(MART_TABLES[0]))
    assert built.run_id in {r.run_id for r in pipeline.instance.get_runs(
        filters=dg.RunsFilter(job_name="build_marts"))}
