"""A sync killed while it holds the warehouse pool's slot: Dagster's daemon (run monitoring, with the
project's launcher) marks its run failed and frees the slot, and the run-failure alert sends one
message. The real daemon, the real CLI, the project's own dagster.yaml (its intervals shortened)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from pipelines.app.sync import open_instance
from pipelines.defs.partitions import WAREHOUSE_POOL
from pipelines.warehouse import db
from tests.operations.receivers import Receivers

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def start(args: list[str], log: Path, **kw) -> subprocess.Popen:
    """A process whose output goes to ``log`` (a file: a pipe nobody reads fills and stalls it)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True, **kw)
    proc.log = log
    return proc


def wait_for(what: str, condition, seconds: float = 180, *processes: subprocess.Popen):
    """Polls ``condition`` until it returns something true; fails naming ``what`` if a process dies first
    or after ``seconds`` (a generous bound for a busy machine, not a timing)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        for proc in processes:
            assert proc.poll() is None, f"{proc.args[:2]} exited while waiting for {what}: {proc.log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.5)


def instance_settings(home: Path) -> None:
    text = (ROOT / "dagster.yaml").read_text()
    for setting, seconds in (("poll_interval_seconds", 2), ("free_slots_after_run_end_seconds", 1)):
        assert f"{setting}: " in text, setting
        text = "\n".join(f"  {setting}: {seconds}" if line.strip().startswith(f"{setting}:") else line
                         for line in text.splitlines())
    home.mkdir()
    (home / "dagster.yaml").write_text(text + "\n")


def claimed(instance: dg.DagsterInstance) -> int:
    return len(instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots)


def sensor_started(instance: dg.DagsterInstance, name: str) -> bool:
    for state in instance.all_instigator_state():
        if state.name == name and state.instigator_data and getattr(state.instigator_data, "cursor", None):
            return True
    return False


def test_a_killed_sync_is_failed_its_slot_freed_and_alerted_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    instance_settings(home)
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    with Receivers() as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
        env.update(DAGSTER_HOME=str(home), WHITESPACE_WAREHOUSE=str(warehouse), PYTHONPATH=str(ROOT),
                   WHITESPACE_ALERT_WEBHOOK_URL=rx.webhook.url)
        # the instance's storage is made first, under the sync's own lock (see open_instance)
        with db.writer_turn(warehouse), open_instance(home) as instance:
            # the sync takes the pool's slot for its first warehouse write, then waits for the writer turn we hold
            sync = start([str(BIN / "whitespace-etl"), "demo", "--scale", "0.05"], tmp_path / "sync.log",
                         cwd=tmp_path, env=env)
            daemon = start([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                           tmp_path / "daemon.log", cwd=ROOT, env=env)
            try:
                wait_for("the sync to hold the pool's slot", lambda: claimed(instance), 180, sync, daemon)
                [run] = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                wait_for("the alert sensor's first tick", lambda: sensor_started(instance, "alert_on_run_failure"),
                         180, sync, daemon)
                os.killpg(sync.pid, signal.SIGKILL)
                sync.wait()
                failed = wait_for("run monitoring to fail the run", lambda: instance.get_run_by_id(
                    run.run_id).status == dg.DagsterRunStatus.FAILURE, 180, daemon)
                assert failed
                wait_for("the slot to be freed", lambda: claimed(instance) == 0, 180, daemon)
                [post] = wait_for("the alert", lambda: list(rx.webhook.posts), 180, daemon)
            finally:
                for proc in (sync, daemon):
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGTERM)
                        try:
                            proc.wait(timeout=60)
                        except subprocess.TimeoutExpired:
                            os.killpg(proc.pid, signal.SIGKILL)
            events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    text = json.dumps(post)
    assert f"run failed: {run.job_name}" in text and "is gone" in text, text
    assert rx.webhook.url not in text
    assert len(events) == 1
    shutil.rmtree(home, ignore_errors=True)
