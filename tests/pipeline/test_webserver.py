"""The real Dagster webserver loads the code location: assets, partitions and checks, over GraphQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx

from pipelines.defs.partitions import organisations_partitions
from tests.conftest import free_port
from tests.pipeline.conftest import SUMO_IDS

ROOT = Path(__file__).resolve().parents[2]
QUERY = """
{
  assetNodes {
    assetKey { path }
    description
    isPartitioned
    partitionKeys
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}
"""



def test_webserver_shows_assets_partitions_and_checks(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env.update(DAGSTER_HOME=str(home), PYTHONPATH=str(ROOT))
    webserver = Path(sys.executable).with_name("dagster-webserver")
    log = tmp_path / "webserver.log"  # a file, not a pipe: a pipe nobody reads fills and stalls the server
    proc = subprocess.Popen([str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        deadline = time.monotonic() + 120
        nodes = None
        while nodes is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=10)
                data = r.json().get("data") or {}
                nodes = data.get("assetNodes") or None
            except httpx.TransportError:
                pass
            if nodes is None:
                assert time.monotonic() < deadline, "the webserver did not answer in time"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert {"raw_risks", "risks", "risk_channels", "risk_visibility", "organisations", "teams", "users"} <= set(by_key)
    assert all(n["description"] for n in nodes)
    assert by_key["risks"]["isPartitioned"] and set(by_key["risks"]["partitionKeys"]) == set(SUMO_IDS)
    checks = {c["name"] for n in nodes for c in n["assetChecksOrError"].get("checks", [])}
    assert {"risks_unique_key", "risk_visibility_matches_api", "risk_channels_format"} <= checks
