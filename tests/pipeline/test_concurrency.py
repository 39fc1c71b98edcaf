"""Partitions launched together must all succeed: DuckDB has one writer, the instance's pool says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.defs.partitions import organisations_partitions
from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer
from tests.pipeline.conftest import SUMO_IDS

ROOT = Path(__file__).resolve().parents[2]
RUN_ONE = """
import sys, dagster as dg
from pipelines.definitions import defs
defs = defs()
with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def("sync_organisation").execute_in_process(
        instance=instance, partition_key=sys.argv[1], raise_on_error=False)
    failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    print("OK" if result.success else "FAILED " + " | ".join(failures))
"""


def test_concurrent_partition_runs_all_succeed(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    db_path = tmp_path / "warehouse.duckdb"
    with SandboxServer(seed=3, scale=0.25) as server:  # concurrency, not volume: a quarter of the book
        env = {**os.environ, "DAGSTER_HOME": str(home), "WHITESPACE_WAREHOUSE": str(db_path),
               "WHITESPACE_SYNC_URL": server.sync_url, "WHITESPACE_BUCKET": BUCKET,
               "WHITESPACE_API_URL": server.api_url, "WHITESPACE_REFRESH_TOKEN": SUMO_REFRESH_TOKEN,
               "WHITESPACE_USER_NAME": SUMO_USER_NAME,
               # No waiting on the file lock: only the pool may keep the writers apart.
               "WHITESPACE_LOCK_WAIT_SECONDS": "0"}
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(organisations_partitions.name, SUMO_IDS)
        # every organisation at once, and one of them twice (the same partition in two runs at once)
        procs = [subprocess.Popen([sys.executable, "-c", RUN_ONE, mu], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for mu in [*SUMO_IDS, SUMO_IDS[0]]]
        outputs = [p.communicate(timeout=300) for p in procs]
    for out, err in outputs:
        assert out.strip().endswith("OK"), out + err[-3000:]
    with duckdb.connect(str(db_path), read_only=True) as conn:
        rows = dict(conn.execute("SELECT user_id, count(*) FROM risk_visibility GROUP BY 1").fetchall())
    assert set(rows) == set(SUMO_IDS) and all(n > 50 for n in rows.values())


HOLD_WRITER = """
import sys, time
from pipelines.warehouse import db
with db.session(sys.argv[1]) as conn:
    conn.execute("CREATE TABLE held (n INTEGER)")
    conn.execute("INSERT INTO held VALUES (1)")
    print("writing", flush=True)
    time.sleep(1.5)
"""


def test_a_second_writer_waits_its_turn_without_waiting_on_duckdbs_lock(tmp_path: Path) -> None:
    """If the pool ever lets two writers through at once (two run processes claiming its one slot
    together on SQLite storage), the second waits for the first instead of failing on the file lock."""
    from pipelines.config import WarehouseConfig
    from pipelines.warehouse import db

    db_path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(db_path)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "writing"
    no_wait = WarehouseConfig(path=db_path, lock_wait_seconds=0)  # DuckDB's lock alone would fail at once
    with db.session(no_wait) as conn:
        assert conn.execute("SELECT n FROM held").fetchall() == [(1,)], "the first writer finished first"
    assert holder.wait(timeout=30) == 0


def test_two_fetches_of_one_organisation_take_turns_with_its_index(tmp_path: Path, monkeypatch) -> None:
    """The detail index and the feed cursor were read, changed and written back with no lock: a CLI sync and a
    scheduled run of one organisation could write back an old signature over a failure the other had recorded.
    Two fetches at once now take turns: the second plans from what the first wrote."""
    import threading

    from pipelines.client import WhitespaceClient
    from pipelines.client.settings import Settings
    from pipelines.extract import details
    from pipelines.landing import raw

    events: list[tuple[str, str]] = []
    plan, write = details.plan, details._write_json_atomically  # noqa: SLF001
    monkeypatch.setattr(details, "plan", lambda *a, **k: events.append(("plan", threading.current_thread().name))
                        or plan(*a, **k))
    monkeypatch.setattr(details, "_write_json_atomically", lambda path, payload: events.append(
        ("index", threading.current_thread().name)) or write(path, payload))
    a_fetching, b_started = threading.Event(), threading.Event()
    with SandboxServer(seed=3, scale=0.1) as server:
        settings = Settings.from_values(server.sync_url, BUCKET, server.api_url, SUMO_REFRESH_TOKEN,
                                        user_name=SUMO_USER_NAME)
        with WhitespaceClient(settings) as client:
            bound = client.for_user(SUMO_IDS[0])
            landed = raw.record(raw.download_risk_list(bound, tmp_path, SUMO_IDS[0]), tmp_path, SUMO_IDS[0], "/risks")
            risk_text = bound.risk_text

            def first_waits(risk_id: str) -> str:  # A, inside its fetch, waits until B has set out to fetch too
                if threading.current_thread().name.startswith("whitespace") and not a_fetching.is_set():
                    a_fetching.set()
                    assert b_started.wait(60)
                return risk_text(risk_id)

            monkeypatch.setattr(bound, "risk_text", first_waits)

            def b() -> None:
                assert a_fetching.wait(60)
                b_started.set()
                details.fetch(bound, tmp_path, landed)

            fetches = [threading.Thread(target=details.fetch, args=(bound, tmp_path, landed), name="A"),
                       threading.Thread(target=b, name="B")]
            for t in fetches:
                t.start()
            for t in fetches:
                t.join(120)
    assert [e for e in events if e[1] in ("A", "B")] == [("plan", "A"), ("index", "A"), ("plan", "B")], events
    index = details.read_index(tmp_path, SUMO_IDS[0])
    assert index == {root: sig for root, (_lead, sig) in details.roots_in_list(landed.path).items()}
