"""The console script as a user runs it: the demo, a failing sync, the sandbox and a rebuild."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SandboxServer, stop_process
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "pipelines.app.cli"]


def run(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WHITESPACE_", "DAGSTER_HOME"))}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(CLI + args, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_demo_needs_no_configuration_and_fills_the_warehouse(tmp_path: Path) -> None:
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    out = run(["demo"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[3/3]" in out.stdout and "risks per organisation" in out.stdout
    db = tmp_path / "data" / "warehouse.duckdb"
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(DISTINCT user_id) FROM risk_visibility").fetchone()[0] == 3
    runs = list((tmp_path / ".dagster").glob("**/runs.db")) + list((tmp_path / ".dagster" / "history").glob("*"))
    assert runs, "runs are recorded in the project's Dagster home"
    again = run(["rebuild"], tmp_path)
    assert again.returncode == 0 and "risks" in again.stdout, again.stderr


def test_sync_fails_clearly_when_the_refresh_token_is_dead(tmp_path: Path) -> None:
    with SandboxServer() as server:
        server.admin("revoke", refresh_token=SUMO_REFRESH_TOKEN)
        env = {"WHITESPACE_SYNC_URL": server.sync_url, "WHITESPACE_BUCKET": BUCKET,
               "WHITESPACE_API_URL": server.api_url, "WHITESPACE_REFRESH_TOKEN": SUMO_REFRESH_TOKEN,
               "WHITESPACE_USER_NAME": "Sam Sumo"}
        out = run(["sync"], tmp_path, env)
    assert out.returncode != 0
    assert "User Profile" in out.stderr and SUMO_REFRESH_TOKEN not in out.stdout + out.stderr
    assert not (tmp_path / "data" / "warehouse.duckdb").exists(), "the warehouse is untouched"



def test_sandbox_command_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(CLI + ["sandbox", "--port", str(port), "--seed", "9"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                version = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "no answer"
                time.sleep(0.2)
        assert version.status_code == 200
        refresh = httpx.get(f"http://127.0.0.1:{port}/sync/{BUCKET}/_oidc_refresh",
                            params={"refresh_token": SUMO_REFRESH_TOKEN})
        assert refresh.status_code == 200 and refresh.json()["id_token"].count(".") == 2
    finally:
        stop_process(proc, grace=60)  # a busy machine may take a while; it is killed rather than left behind
