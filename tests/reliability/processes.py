"""What the process tests share: a sandbox for the module, a sync as a process of its own, and the
fingerprint of an undisturbed sync to compare with."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server():
    with SandboxServer(seed=21, scale=0.25) as s:  # processes killed and racing, not volume
        yield s


def env_for(server: SandboxServer, folder: Path, **extra: str) -> dict[str, str]:
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env.update(PYTHONPATH=str(ROOT), DAGSTER_HOME=str(home), WHITESPACE_WAREHOUSE=str(folder / "warehouse.duckdb"),
               WHITESPACE_SYNC_URL=server.sync_url, WHITESPACE_BUCKET=BUCKET, WHITESPACE_API_URL=server.api_url,
               WHITESPACE_REFRESH_TOKEN=SUMO_REFRESH_TOKEN, WHITESPACE_USER_NAME=SUMO_USER_NAME, **extra)
    return env


def start_sync(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.app.cli", "sync", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: int = 300) -> tuple[int, str]:
    """The sync's exit code and output; one that has not ended after ``timeout`` s (a bound for a busy
    machine) is killed and the test fails with what it printed so far."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the sync did not end within {timeout} s; it printed:\n{out}{err}") from None
    return proc.returncode, out + err


@pytest.fixture(scope="module")
def clean(server, tmp_path_factory) -> dict:
    """The fingerprint of an undisturbed sync, and how long it took."""
    from tests.reliability.conftest import fingerprint  # the conftest imports this module's fixtures

    folder = tmp_path_factory.mktemp("clean")
    started = time.monotonic()
    code, text = finish(start_sync(env_for(server, folder), folder))
    assert code == 0, text
    return {"fingerprint": fingerprint(folder / "warehouse.duckdb"), "seconds": time.monotonic() - started}


