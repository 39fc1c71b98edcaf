"""Pipeline fixtures: the definitions' own jobs, run in-process against a sandbox over loopback."""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines import config
from pipelines.defs import resources
from pipelines.defs.build import build
from pipelines.defs.partitions import organisations_partitions
from sandbox import SandboxServer
from sandbox.faults import Faults
from sandbox.world import USERS

SUMO_IDS = [m.user_id for m in USERS[0].memberships]
STAGES = ("synced", "mi", "marts")
"""What ``Pipeline.start_from`` can start from, each the one before it and one job more."""
LOAD_TIMES = {"loaded_at", "synced_at", "gone_at", "first_seen_at", "last_seen_at", "valid_from", "valid_to",
              "failed_at", "as_of", "days_in_status", "built_at", "loads"}
"""Columns that say when a load ran, not what was loaded: two loads of the same answers differ there."""
_made: dict[tuple[int, int, str], tuple[Path, dict]] = {}
"""This test process's warehouses by (seed, roots, stage): the folder and the sandbox's MI cursors."""


class Pipeline:
    """A warehouse in a temporary folder, a Dagster instance, and helpers to run the jobs."""

    def __init__(self, server: SandboxServer, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.db_path = tmp / "warehouse" / "warehouse.duckdb"
        self.raw_dir = self.db_path.parent / "raw"
        self.warehouse = config.WarehouseConfig(path=self.db_path)
        self.defs = self._bound = self.bind()
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)

    def start_from(self, stage: str) -> None:
        """Start where a fresh warehouse is after ``stage`` against a fresh sandbox like this one:
        "synced" (the reference data and every organisation), "mi" (then the MI report), "marts" (then
        the marts). The jobs run once per test process, in a Dagster instance of their own, and their
        warehouse is copied in (with the sandbox's MI cursors, the platform's memory of that run): for
        tests that start there and read nothing of those runs. Refused where the copy could differ
        from running the jobs here: a sandbox already moved, faulted or asked, a warehouse already
        made, other bindings."""
        sandbox = self.server.sandbox
        untouched = (sandbox.world.tick == 0 and sandbox.faults.faults == Faults() and not sandbox.stats
                     and not sandbox.departed and not sandbox.mi_cursor and not sandbox.tokens._revoked)
        if stage not in STAGES or not untouched or self.db_path.parent.exists() or self.defs is not self._bound:
            raise AssertionError(f"start_from({stage!r}) needs one of {STAGES}, an untouched sandbox, no warehouse "
                                 "yet and the default bindings: run the jobs instead")
        key = (sandbox.world.seed, sandbox.world.base_roots, stage)
        if key not in _made:
            _made[key] = self._make(stage)
        folder, cursors = _made[key]
        shutil.copytree(folder, self.db_path.parent)
        sandbox.mi_cursor.update(copy.deepcopy(cursors))

    def _make(self, stage: str) -> tuple[Path, dict]:
        """Run ``stage``'s jobs against this sandbox into a warehouse and a Dagster instance of their own;
        the sandbox is then left as the copies find theirs (its counters reset, its MI cursors taken)."""
        folder = Path(tempfile.mkdtemp(prefix="whitespace-start-"))
        atexit.register(shutil.rmtree, folder, True)
        maker = Pipeline(self.server, folder, None)
        maker.sync_all()
        if stage in ("mi", "marts"):
            assert maker.mi().success
        if stage == "marts":
            assert maker.marts().success
        sandbox = self.server.sandbox
        assert not sandbox.mi_prepared, "every prepared MI answer was fetched"
        cursors = copy.deepcopy(sandbox.mi_cursor)
        sandbox.mi_cursor.clear()
        self.server.admin("reset")
        return maker.db_path.parent, cursors

    def bind(self, warehouse: config.WarehouseConfig | None = None, **login: str) -> dg.Definitions:
        """The project's definitions bound to this sandbox and warehouse (``login`` overrides fields)."""
        return build(resources.for_sandbox(self.server, warehouse or self.warehouse, **login))

    def reference(self, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def("reference_data").execute_in_process(instance=self.instance,
                                                                             raise_on_error=raise_on_error)

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


def rows_of(db_path: Path, skip_tables: set[str] = frozenset(), skip_columns: set[str] = LOAD_TIMES
            ) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, without ``skip_columns``: two warehouses compared table by table."""
    with duckdb.connect(str(db_path), read_only=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        out = {}
        for table in tables:
            if table in skip_tables:
                continue
            cols = [r[0] for r in conn.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                               "ORDER BY column_index", [table]).fetchall() if r[0] not in skip_columns]
            select = ", ".join(f'"{c}"' for c in cols)
            out[table] = conn.execute(f'SELECT {select} FROM "{table}" ORDER BY ALL').fetchall()
    return out
