"""The run launcher of a single-machine instance: Dagster's default one, able to tell whether a run's
process is still alive, so that Dagster's run monitoring (the daemon) marks a killed run failed.

Dagster's ``DefaultRunLauncher`` cannot check a run worker's health, so with it run monitoring never
looks at a "started" run: a run whose process was killed (a ``whitespace-etl sync`` stopped with
``kill -9``, a ``dagster dev`` that was killed with its runs) stays "started" for ever and keeps its
slot of the warehouse pool, and every later warehouse write waits for it. This launcher knows a run's
process from the engine event Dagster writes when the run starts (``Started process for run (pid:
N)``) or, for the runs of ``whitespace-etl sync`` (in its own process), from the tag it sets. A run is
"failed" when that process is gone; run monitoring then marks it failed, and frees its pool slot after
``free_slots_after_run_end_seconds``.

The process check is of this machine: for runs in other machines or containers use the launcher made
for them (``dagster-k8s``, ``dagster-docker``), whose health checks run monitoring uses the same way.
"""

from __future__ import annotations

import os
import socket

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher

PID_TAG = "whitespace/pid"
"""The process of ``whitespace-etl sync`` that runs a run in-process."""
HOST_TAG = "whitespace/host"
"""The machine it runs on."""


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The process running ``run`` on this machine, if it is known."""
    host = run.tags.get(HOST_TAG)
    if host and host != socket.gethostname():
        return None
    tag = run.tags.get(PID_TAG, "")
    if tag.isdigit():
        return int(tag)
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None and str(pid.value).isdigit() and entry.message.startswith("Started process for run"):
            return int(pid.value)
    return None


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` with a health check of the run's process (see the module's docstring)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        pid = run_pid(self._instance, run)
        if pid is None:  # not known yet (the run is starting), or another machine's: never called dead
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run's process is not known on this machine")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process ({pid}) is gone: it was killed or crashed")
