"""The sync's Dagster instance keeps its SQLite event log connected (``pipelines.app.eventlog``): the same
events land, readable by any other process, and the engines are made once per database file."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipelines.app import sync as sync_module
from pipelines.app.sync import open_instance, sync
from pipelines.defs.partitions import organisations_partitions
from sandbox import SandboxServer
from tests.pipeline.conftest import SUMO_IDS, Pipeline


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    """The pipeline fixture on a smaller sandbox: what is stored matters here, not how much."""
    with SandboxServer(seed=11, scale=0.1) as server:
        yield Pipeline(server, tmp_path, monkeypatch)


def events(instance: dg.DagsterInstance) -> list[tuple]:
    return sorted((e.run_id, e.dagster_event_type, e.timestamp) for e in instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=10_000)
        for e in [e.event_log_entry])


def test_a_sync_through_the_kept_connections_stores_what_any_other_instance_reads(pipeline, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(sync_module.INSTANCE_SETTINGS, home / "dagster.yaml")
    with open_instance(home) as instance:
        engines = instance.event_log_storage._whitespace_engines  # noqa: SLF001 - the kept engines
        instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)
        outcomes = sync(instance, pipeline.defs, log=lambda *_: None)
        assert all(o.ok for o in outcomes), outcomes
        runs = instance.get_runs()
        assert len(runs) >= 3 and set(engines) <= {"index", *(r.run_id for r in runs)} and "index" in engines
        for shard in list(engines):  # commits wait for the OS, not the disk: safe only in WAL mode (the module)
            with instance.event_log_storage._connect(shard) as conn:  # noqa: SLF001 - the kept connection
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1, "NORMAL"
        kept, run_ids = events(instance), {r.run_id for r in runs}
    assert not engines, "closing the instance disposes of its engines"
    with dg.DagsterInstance.from_config(str(home)) as other:  # Dagster's own, connecting for every call
        assert not hasattr(other.event_log_storage, "_whitespace_engines")
        assert events(other) == kept and len(kept) >= 3 * 12, "every table of every organisation, and the rest"
        assert {r.run_id for r in other.get_runs()} == run_ids
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in other.get_runs())
