"""The warehouse file opens in the DuckDB that BI tools embed: a real DuckDB 1.4 LTS, in a venv of its
own (``sh tests/install-tools.sh`` makes ``build/duckdb-1.4/``), reads the demo's warehouse and its
marts; a file in DuckDB 2's newer format is refused by it, reported, and migrated."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models import MART_TABLES
from pipelines.app.sync import summary
from pipelines.config import WarehouseConfig
from pipelines.warehouse import db

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "build" / "duckdb-1.4" / "bin" / "python"
QUERIES = [*(f"SELECT count(*) FROM {t}" for t in MART_TABLES),
           "SELECT currency, sum(premium), sum(brokerage) FROM mart_book_premium GROUP BY 1 ORDER BY 1",
           "SELECT count(*) FROM duckdb_columns() WHERE comment IS NOT NULL"]
SCRIPT = """import duckdb, json, sys
print(duckdb.__version__, file=sys.stderr)
conn = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps([conn.execute(q).fetchall() for q in sys.argv[2:]], default=str))"""


def read_with_duckdb_14(path: Path) -> subprocess.CompletedProcess:
    if not READER.exists():
        pytest.fail("No DuckDB 1.4 reader: run 'sh tests/install-tools.sh' (it makes build/duckdb-1.4/).")
    return subprocess.run([str(READER), "-c", SCRIPT, str(path), *QUERIES], capture_output=True, text=True,
                          timeout=120)


def read_here(path: Path) -> list:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        return json.loads(json.dumps([conn.execute(q).fetchall() for q in QUERIES], default=str))


def test_a_duckdb_1_4_reader_opens_the_warehouse_and_reads_the_marts(synced) -> None:
    out = read_with_duckdb_14(synced.db_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("1.4."), out.stderr
    assert json.loads(out.stdout) == read_here(synced.db_path)
    assert json.loads(out.stdout)[0][0][0] > 0


def test_a_newer_file_is_reported_and_migrated(synced, tmp_path) -> None:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(synced.db_path, path)
    before, after = db.migrate_storage(WarehouseConfig(path=path, storage_version="latest"), log=lambda *_: None)
    assert before.startswith("v1.4") and after.startswith("v2."), (before, after)
    refused = read_with_duckdb_14(path)
    assert refused.returncode != 0 and "version number" in refused.stderr
    assert "run 'whitespace-etl migrate-storage'" in summary(WarehouseConfig(path=path))

    env = {**os.environ, "WHITESPACE_WAREHOUSE": str(path)}
    run = subprocess.run([sys.executable, "-m", "pipelines.app.cli", "migrate-storage"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "-> v1.4.0" in run.stdout
    out = read_with_duckdb_14(path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == read_here(synced.db_path), "every table, row and comment came across"
    assert "migrate-storage" not in summary(WarehouseConfig(path=path))
