"""The code location loads, offline, and describes everything it defines."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from pipelines.definitions import defs as load_defs

defs = load_defs()


def test_definitions_load_without_touching_the_network() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n    raise RuntimeError('network touched at import')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "from pipelines.definitions import defs\n"
        "defs().resolve_all_job_defs()\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_every_asset_is_described_and_jobs_exist() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 20, key
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"sync_organisation", "reference_data", "mi_report",
                                                             "build_marts"}
    assert defs.resolve_sensor_def("organisations_sensor")
    assert {s.name for s in defs.schedules} == {"daily_sync", "daily_reference", "daily_mi_report", "daily_marts"}


def test_warehouse_writers_share_one_pool() -> None:
    graph = defs.resolve_asset_graph()
    writers = [k for k in graph.get_all_asset_keys() if not k.to_user_string().startswith("raw_")]
    for key in writers:
        assert graph.get(key).pools == {"duckdb_warehouse"}, key


def test_sensor_adds_partitions_for_new_organisations(tmp_path) -> None:
    from pipelines.defs import resources
    from pipelines.defs.build import build
    from sandbox import SINGLE_REFRESH_TOKEN, SandboxServer

    with SandboxServer() as server, dg.instance_for_test() as instance:
        bound = build(resources.for_sandbox(server, refresh_token=SINGLE_REFRESH_TOKEN, user_name=""))
        sensor = bound.resolve_sensor_def("organisations_sensor")
        result = sensor(dg.build_sensor_context(instance=instance, resources=bound.resources))
        assert [r.partition_key for r in result.run_requests] == ["MU4C3D5E60-8F70-4192-ACBD-3E4F50617283"]
        [request] = result.dynamic_partitions_requests
        assert list(request.partition_keys) == ["MU4C3D5E60-8F70-4192-ACBD-3E4F50617283"]


def test_dg_check_defs_loads_the_project_without_configuration() -> None:
    """The dg CLI (``[tool.dg]`` in pyproject.toml) finds the project and loads its definitions."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env["VIRTUAL_ENV"] = sys.prefix  # dg checks that the project's environment is the active one
    dg_cli = Path(sys.executable).with_name("dg")
    out = subprocess.run([str(dg_cli), "check", "defs"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_a_run_launched_from_the_code_location_runs_its_steps_in_one_process(tmp_path, monkeypatch) -> None:
    """A run the daemon or the UI launches runs its steps in its own process, as ``whitespace-etl sync``
    does: a process per step cost 1.5-4 s each here (a first sync of two organisations: 9 s against 3 s)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from tests.conftest import ROOT

    monkeypatch.setenv("WHITESPACE_SANDBOX", "1")
    monkeypatch.setenv("WHITESPACE_SANDBOX_SCALE", "0.05")
    monkeypatch.setenv("WHITESPACE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    job = ReconstructableRepository.for_module("pipelines.definitions", "defs", working_directory=str(ROOT)
                                               ).get_reconstructable_job("reference_data")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance, dg.execute_job(job, instance) as result:
        assert result.success
        engine = [e.message for e in instance.all_logs(result.run_id)
                  if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT]
    assert any(m.startswith("Executing steps in process") for m in engine), engine
    assert not any("multiprocess" in m or "subprocess" in m for m in engine), engine
