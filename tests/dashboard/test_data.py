"""Where the dashboard reads from: the warehouse, read-only and briefly, or the marts' Parquet export
while a sync holds the warehouse."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from models import MART_TABLES
from pipelines.app.dashboard import data
from pipelines.warehouse import db
from tests.dashboard.conftest import writer_holding


def test_reads_the_warehouse_when_it_is_free(synced) -> None:
    snap = data.load(synced.db_path, synced.db_path.parent / "marts")
    assert snap.source == "warehouse" and snap.note == ""
    for table in MART_TABLES:
        assert len(snap[table]) == synced.query(f"SELECT count(*) FROM {table}")[0][0]
    assert snap.as_of == synced.query("SELECT max(synced_at) FROM sync_state")[0][0]


def test_reads_the_export_while_a_sync_writes(synced) -> None:
    expected = {t: synced.query(f"SELECT count(*) FROM {t}")[0][0] for t in MART_TABLES}
    with writer_holding(synced.db_path):
        with pytest.raises(duckdb.IOException):  # the warehouse really is locked
            duckdb.connect(str(synced.db_path), read_only=True)
        started = time.monotonic()
        snap = data.load(synced.db_path, synced.db_path.parent / "marts")
        waited = time.monotonic() - started
    assert snap.source == "parquet" and "sync is writing" in snap.note
    assert {t: len(snap[t]) for t in MART_TABLES} == expected
    assert waited < 10


READER = """
import sys, time
from pathlib import Path
from pipelines.app.dashboard import data
reads = 0
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    snap = data.load(Path(sys.argv[1]), Path(sys.argv[2]))
    reads += snap.source == "warehouse"
    time.sleep(0.05)
print(reads)
"""


def test_a_read_never_keeps_a_sync_out(synced) -> None:
    """The dashboard's connection lives for one read: a sync that starts meanwhile waits at most
    for that read, then writes."""
    proc = subprocess.Popen([sys.executable, "-c", READER, str(synced.db_path), str(synced.db_path.parent / "marts"),
                             "6"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        for n in range(5):
            conn = db.connect(synced.db_path, wait=30)
            try:
                conn.execute("CREATE OR REPLACE TABLE _written AS SELECT ? AS n", [n])
            finally:
                conn.close()
            time.sleep(0.2)
    finally:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert int(out) > 5, "the dashboard kept reading the warehouse between the writes"
    assert synced.query("SELECT n FROM _written") == [(4,)]


def test_clear_error_without_a_warehouse(tmp_path) -> None:
    with pytest.raises(data.NoMarts, match="whitespace-etl demo"):
        data.load(tmp_path / "warehouse.duckdb", tmp_path / "marts")


def test_clear_error_when_locked_and_never_exported(synced) -> None:
    with writer_holding(synced.db_path), pytest.raises(data.NoMarts, match="no Parquet export"):
        data.load(synced.db_path, synced.db_path.parent / "elsewhere")
