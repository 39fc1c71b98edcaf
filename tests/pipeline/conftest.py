"""Pipeline fixtures: the definitions' own jobs, run in-process against a sandbox over loopback."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines import config
from pipelines.defs import resources
from pipelines.defs.build import build
from pipelines.defs.partitions import organisations_partitions
from sandbox import SandboxServer
from sandbox.world import USERS

SUMO_IDS = [m.user_id for m in USERS[0].memberships]


class Pipeline:
    """A warehouse in a temporary folder, a Dagster instance, and helpers to run the jobs."""

    def __init__(self, server: SandboxServer, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.db_path = tmp / "warehouse" / "warehouse.duckdb"
        self.raw_dir = self.db_path.parent / "raw"
        self.warehouse = config.WarehouseConfig(path=self.db_path)
        self.defs = self.bind()
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)

    def bind(self, warehouse: config.WarehouseConfig | None = None, **login: str) -> dg.Definitions:
        """The project's definitions bound to this sandbox and warehouse (``login`` overrides fields)."""
        return build(resources.for_sandbox(self.server, warehouse or self.warehouse, **login))

    def reference(self) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("reference_data").execute_in_process(instance=self.instance)

    def sync(self, user_id: str, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("sync_organisation").execute_in_process(
            instance=self.instance, partition_key=user_id, raise_on_error=raise_on_error)

    def mi(self, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("mi_report").execute_in_process(instance=self.instance,
                                                                       raise_on_error=raise_on_error)

    def marts(self, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("build_marts").execute_in_process(instance=self.instance,
                                                                      run_config=run_config or {})

    def sync_all(self) -> list[dg.ExecuteInProcessResult]:
        self.reference()
        return [self.sync(mu) for mu in SUMO_IDS]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.db_path), read_only=True) as conn:
            return conn.execute(sql, params or []).fetchall()

    def counts(self) -> dict[str, int]:
        tables = ("risks", "risk_channels", "risk_visibility", "organisations", "teams", "users", "users__teams")
        return {t: self.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def materializations(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [mat] = [m for m in result.asset_materializations_for_node("risk_tables") if m.asset_key.to_user_string() == key]
    return {k: v.value for k, v in mat.metadata.items()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
            for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION}
