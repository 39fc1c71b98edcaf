"""Shared fixtures: a sandbox on loopback, isolated settings, retries without waiting."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from pipelines.client import Settings, WhitespaceClient, retry
from sandbox import BUCKET, SINGLE_REFRESH_TOKEN, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer

# Property-based tests draw new examples on every run here; in CI (CI=true) the same ones each time, so a
# green main stays green and what a developer's run found is a failing example to keep as a test.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def _temporary_files_in_memory() -> None:
    """The tests' temporary files (their warehouses, Dagster homes, landings) go to ``/dev/shm`` when the
    machine has one and ``TMPDIR`` is not set: Dagster commits each event to SQLite, and on a RAM file
    system the suite takes 9 minutes here instead of 10.5. Set in the controller before its workers and
    every process a test starts inherit it."""
    shm = Path("/dev/shm")
    if "TMPDIR" not in os.environ and shm.is_dir() and os.access(shm, os.W_OK):
        os.environ["TMPDIR"] = str(shm)
        tempfile.tempdir = None  # gettempdir() looks again


_temporary_files_in_memory()

WHITESPACE_ENV = ("WHITESPACE_SYNC_URL", "WHITESPACE_BUCKET", "WHITESPACE_API_URL", "WHITESPACE_REFRESH_TOKEN",
                  "WHITESPACE_USER_IDS", "WHITESPACE_USER_NAME", "WHITESPACE_WAREHOUSE")


@pytest.fixture(autouse=True)
def _sigterm_at_its_default() -> None:
    """Each test starts with SIGTERM neither ignored nor blocked. A pytest-xdist worker ignores SIGINT,
    and Dagster, running a job in the worker's main thread, maps SIGTERM to the SIGINT handler: from then
    on the worker ignores SIGTERM, and so does every process it starts (an ignored signal survives
    exec), so a test stopping its sandbox or a child with SIGTERM waited in vain on a busy worker."""
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No test sees the developer's WHITESPACE_* settings or writes into the working directory."""
    for name in WHITESPACE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    os.makedirs(tmp_path / "dagster_home", exist_ok=True)


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    """A private sandbox (tests move its clock), a fresh warehouse and a Dagster instance."""
    from tests.pipeline.conftest import Pipeline

    with SandboxServer(seed=11, scale=0.25) as server:  # about 290 placements: enough for every case, a quarter of the time
        yield Pipeline(server, tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(seed=7) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The shared sandbox with its faults, revocations and counters reset for each test."""
    sandbox_server.admin("reset")
    yield sandbox_server
    sandbox_server.admin("reset")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """Moves the wall clock (``time.time``, which token expiry on both sides reads) forward on demand,
    so expiry is tested without waiting for it."""
    import time

    real, offset = time.time, [0.0]
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds
    return advance


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries run at once; the waits they asked for are recorded here."""
    recorded: list[float] = []
    monkeypatch.setattr(retry, "sleep", recorded.append)
    return recorded


def record_issued_tokens(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every id_token ``server`` hands out from now on, for tests that search for leaks."""
    tokens: list[str] = []
    issuer = server.sandbox.tokens
    original = issuer.issue

    def issue(user, dies_after=0):
        body = original(user, dies_after)
        tokens.append(body["id_token"])
        return body

    monkeypatch.setattr(issuer, "issue", issue)
    return tokens


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(server: SandboxServer, token: str = SUMO_REFRESH_TOKEN, **kw) -> Settings:
    kw.setdefault("user_name", SUMO_USER_NAME if token == SUMO_REFRESH_TOKEN else None)
    return Settings.from_values(server.sync_url, BUCKET, server.api_url, token, **kw)


@pytest.fixture
def sumo_client(sandbox: SandboxServer, waits) -> Iterator[WhitespaceClient]:
    with WhitespaceClient(settings_for(sandbox)) as client:
        yield client


@pytest.fixture
def single_client(sandbox: SandboxServer, waits) -> Iterator[WhitespaceClient]:
    with WhitespaceClient(settings_for(sandbox, SINGLE_REFRESH_TOKEN)) as client:
        yield client


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONGEST_FIRST = ("operations/test_postgres_daemon.py", "pipeline/test_changes.py", "reliability/test_processes.py",
                 "pipeline/test_batch.py", "operations/test_postgres_warehouse.py", "test_bench.py",
                 "pipeline/test_warehouse.py", "pipeline/test_money.py", "reliability/test_fault_matrix.py",
                 "pipeline/test_details.py", "pipeline/test_child_documents.py", "operations/test_postgres_instance.py")
"""The test files that take longest here (one and a half to three and a half minutes each in a full run,
much of it waiting on the processes they start), longest first. The workers take them first (pytest-xdist
orders by file size unless ``--no-loadscope-reorder``): the others fill their waits, and no long file is
left running alone at the end. Every other file follows in the order collected."""
_WATCHED = ("data", ".dagster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [name for name in LONGEST_FIRST if not os.path.exists(os.path.join(ROOT, "tests", name))]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py LONGEST_FIRST names files that are not there: {missing}")
    rank = {os.path.join(ROOT, "tests", name): i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(str(item.path), len(rank)))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._whitespace_before = {p for p in _WATCHED if os.path.exists(os.path.join(ROOT, p))}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tests write only into temporary folders: a new data/ or .dagster/ in the project fails the run."""
    before = getattr(session.config, "_whitespace_before", set())
    created = {p for p in _WATCHED if os.path.exists(os.path.join(ROOT, p))} - before
    if created:
        print(f"\ntests wrote into the project folder: {sorted(created)}")
        session.exitstatus = 1

