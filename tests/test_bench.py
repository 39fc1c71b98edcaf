"""The benchmark harness runs end to end at a tiny size (its timings are not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_harness_runs_every_system(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "WHITESPACE_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(out)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    loads = {r["system"]: r for r in results["load"]}
    assert set(loads) == {"ours", "ours_delta", "duckdb_native", "dlt_parquet", "dlt_default"}
    for system, r in loads.items():
        assert "error" not in r, (system, r)
        assert r["import_seconds"] > 0, "each system's imports are timed apart, before its clock starts"
    assert loads["ours"]["create_seconds"] > 0 and "create_seconds" not in loads["duckdb_native"]
    assert loads["ours"]["tables"]["risks"] == loads["duckdb_native"]["tables"]["risks"] == 300
    assert loads["ours"]["tables"]["risk_channels"] == loads["dlt_parquet"]["tables"]["risks__channels"]
    delta = loads["ours_delta"]  # the next day's answer: one document in a hundred revised
    assert delta["changed"] == 3 and delta["tables"]["risk_history"] == 303 and delta["tables"]["risks"] == 300
    assert delta["delta"] is True and delta["parsed"] == 3, "only the revised documents are parsed"
    assert results["quick"] is True
    assert results["extraction"]["requests"] > 0 and results["incremental"]["unchanged_requests"] < 20
    for part in ("incremental", "incremental_latency", "incremental_many", "incremental_many_latency"):
        inc = results[part]  # the changed resync loaded something, and fetched more than the unchanged one
        assert inc["changed_split"]["load"] > 0 and inc["changed_requests"] > inc["unchanged_requests"], (part, inc)
    assert results["incremental"]["organisations"] == 3 and results["incremental_many"]["organisations"] == 4
    assert results["incremental_many_latency"]["latency_ms"] > 0
    big = results["large_book"]  # the large book's harness, at the quick size
    assert big["requests"] > 0 and big["largest_list"] > 0 and big["peak_rss_mb"] > 0
    assert isinstance(big["memory_samples"], list)
    assert "| rows | system |" in run.stdout


def test_a_sandbox_that_will_not_stop_is_killed_without_losing_the_caller(tmp_path: Path) -> None:
    """The benchmark once lost a whole run because the sandbox process took more than 10 s to exit
    after SIGTERM. Now it is killed after the grace period, and nothing is raised."""
    import signal

    from sandbox import stop_process

    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                 "signal.signal(signal.SIGTERM, lambda *a: None)\n"
                                 "print('ready', flush=True)\n"
                                 "while True: time.sleep(0.1)"], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == "ready"  # its SIGTERM handler is in place
    assert stop_process(stubborn, grace=0.5) == -signal.SIGKILL
    polite = subprocess.Popen([sys.executable, "-c", "import time\nprint('ready', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert polite.stdout.readline().strip() == "ready"
    assert stop_process(polite, grace=60) == -signal.SIGTERM, "a process that stops when told is not killed"
