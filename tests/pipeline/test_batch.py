"""Several changed organisations in one Dagster run (their partitions' range, the assets' single-run
backfill policy): the warehouse is the one that a run per organisation gives, each partition keeps its
own materialization, and an organisation that fails in that run fails alone."""

from __future__ import annotations

import dagster as dg

from pipelines.app.sync import sync
from pipelines.config import WarehouseConfig
from pipelines.defs.partitions import organisations_partitions
from sandbox.world import USERS
from tests.pipeline.conftest import SUMO_IDS
from tests.pipeline.test_changes import api_truth
from tests.postgres import differences, file_tables

ORGANISATION_TABLES = ("risks", "risk_channels", "risk_visibility", "risk_history", "risks_gone", "contracts",
                       "contract_line_items", "market_lines", "defined_data", "detail_loads")


def organisation_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name="sync_organisation")))


def test_changed_organisations_load_in_one_run_as_each_on_its_own_would(pipeline, tmp_path) -> None:
    alone = pipeline.bind(WarehouseConfig(path=tmp_path / "alone" / "warehouse.duckdb"))
    alone_instance = dg.DagsterInstance.ephemeral()
    alone_instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)

    def each_on_its_own() -> None:
        for mu in SUMO_IDS:
            assert alone.resolve_job_def("sync_organisation").execute_in_process(
                instance=alone_instance, partition_key=mu).success

    for advance in (None, {"changed_fraction": 0.2, "new_roots": 5, "removed_fraction": 0.1, "lines_changed_fraction": 0.3}):
        if advance:
            pipeline.server.advance(**advance)
        known = {r.run_id for r in organisation_runs(pipeline.instance)}
        lines: list[str] = []
        outcomes = sync(pipeline.instance, pipeline.defs, log=lines.append)
        assert all(o.ok for o in outcomes), outcomes
        each_on_its_own()
        runs = [r for r in organisation_runs(pipeline.instance) if r.run_id not in known]
        assert len(runs) == 1, "the three organisations are consecutive partitions: one run"
        assert (runs[0].tags["dagster/asset_partition_range_start"],
                runs[0].tags["dagster/asset_partition_range_end"]) == (SUMO_IDS[0], SUMO_IDS[-1])
        assert sum("one run of 3" in line for line in lines) == 3, lines
        ours = file_tables(pipeline.db_path)
        theirs = file_tables(tmp_path / "alone" / "warehouse.duckdb")
        assert not differences({t: ours[t] for t in ORGANISATION_TABLES}, theirs), "equal, table by table"
        assert ours["risk_visibility"], "something was loaded"

    # each partition of each table has its own materialization, with its own organisation's figures
    for mu in SUMO_IDS:
        [record] = pipeline.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("risk_visibility"), asset_partitions=[mu]), limit=1).records
        rows = pipeline.query("SELECT count(*) FROM risk_visibility WHERE user_id = ?", [mu])[0][0]
        assert record.asset_materialization.metadata["partition_rows"].value == rows
    checks = pipeline.instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("risk_visibility"), "risk_visibility_matches_api"), limit=1)
    assert checks and checks[0].evaluation.passed and checks[0].evaluation.metadata["organisations"].value == 3


def test_an_organisation_that_fails_in_the_shared_run_fails_alone(pipeline) -> None:
    assert all(o.ok for o in sync(pipeline.instance, pipeline.defs, log=lambda *_: None))
    middle = USERS[0].memberships[1]
    before = dict(pipeline.query("SELECT user_id, count(*) FROM risk_visibility GROUP BY ALL"))
    pipeline.server.advance(changed_fraction=0.2, new_roots=5)
    pipeline.server.set_faults(empty_list_for=middle.company_id)  # its view answers an empty list
    lines: list[str] = []
    outcomes = sync(pipeline.instance, pipeline.defs, log=lines.append)
    by_key = {o.key: o for o in outcomes}
    assert not by_key[middle.user_id].ok and "SuspiciousShrink" in by_key[middle.user_id].note, outcomes
    assert by_key[SUMO_IDS[0]].ok and by_key[SUMO_IDS[2]].ok, outcomes
    assert any("each runs on its own" in line for line in lines), lines
    after = dict(pipeline.query("SELECT user_id, count(*) FROM risk_visibility GROUP BY ALL"))
    assert after[middle.user_id] == before[middle.user_id], "the refused organisation's rows are as they were"
    for mu in (SUMO_IDS[0], SUMO_IDS[2]):
        rows = pipeline.query("SELECT v.risk_id, r.rev FROM risk_visibility v JOIN risks r USING (risk_id) "
                              "WHERE v.user_id = ?", [mu])
        assert set(rows) == api_truth(pipeline, mu), f"{mu} holds the platform's new list"


def test_an_unchanged_organisation_between_changed_ones_joins_their_run(pipeline) -> None:
    assert all(o.ok for o in sync(pipeline.instance, pipeline.defs, log=lambda *_: None))
    middle = USERS[0].memberships[1]
    before = pipeline.query("SELECT risk_id FROM risk_visibility WHERE user_id = ? ORDER BY 1", [middle.user_id])
    # its view lags (the same list as loaded) and the feed names nothing: the check finds it unchanged
    pipeline.server.set_faults(stale_list_for=middle.company_id, activities_empty=True)
    pipeline.server.advance(changed_fraction=0.2, new_roots=5)
    known = {r.run_id for r in organisation_runs(pipeline.instance)}
    lines: list[str] = []
    outcomes = sync(pipeline.instance, pipeline.defs, log=lines.append)
    assert all(o.ok for o in outcomes), outcomes
    assert any(middle.user_id in line and "unchanged, loaded again" in line for line in lines), "\n".join(lines)
    [run] = [r for r in organisation_runs(pipeline.instance) if r.run_id not in known]
    assert run.tags["dagster/asset_partition_range_end"] == SUMO_IDS[-1]
    # loaded again from the answer it had: its rows as they were, nothing new recorded for it
    assert pipeline.query("SELECT risk_id FROM risk_visibility WHERE user_id = ? ORDER BY 1",
                          [middle.user_id]) == before
    [record] = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("risks"), asset_partitions=[middle.user_id]), limit=1).records
    metadata = record.asset_materialization.metadata
    assert (metadata["added"].value, metadata["changed"].value, metadata["gone"].value) == (0, 0, 0)
    for mu in (SUMO_IDS[0], SUMO_IDS[2]):
        rows = pipeline.query("SELECT v.risk_id, r.rev FROM risk_visibility v JOIN risks r USING (risk_id) "
                              "WHERE v.user_id = ?", [mu])
        assert set(rows) == api_truth(pipeline, mu), f"{mu} holds the platform's new list"
