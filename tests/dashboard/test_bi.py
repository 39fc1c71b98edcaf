"""What an external BI tool does: Superset's SQLAlchemy connection (duckdb-engine) opening the warehouse
read-only, and an in-memory DuckDB (Metabase's ``:memory:``) reading the Parquet export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import sqlalchemy as sa

from models import MART_TABLES, marts
from pipelines.app.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_superset_style_read_only_engine(synced) -> None:
    want = {t: synced.query(f"SELECT count(*) FROM {t}")[0][0] for t in MART_TABLES}
    engine = sa.create_engine(f"duckdb:///{synced.db_path}", connect_args={"read_only": True})
    with engine.connect() as conn:
        got = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in MART_TABLES}
        comments = conn.execute(sa.text(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'mart_placing_funnel'")).all()
    engine.dispose()
    assert got == want and all(want.values())
    assert all(c for _, c in comments) and len(comments) == len(marts.mart_placing_funnel.columns)


def test_export_command_and_reading_the_files(synced, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WHITESPACE_WAREHOUSE", str(synced.db_path))
    assert main(["export", "--to", str(tmp_path / "out")]) == 0
    assert "mart_open_items" in capsys.readouterr().out
    want = {t: synced.query(f"SELECT count(*) FROM {t}")[0][0] for t in MART_TABLES}
    [(want_total,)] = synced.query("SELECT sum(written_pct_total) FROM mart_carrier_participation")
    conn = duckdb.connect(":memory:")
    got = {t: conn.execute(f"SELECT count(*) FROM '{tmp_path / 'out' / t}.parquet'").fetchall()[0][0]
           for t in MART_TABLES}
    # exact decimals survive the export
    [(total,)] = conn.execute(
        f"SELECT sum(written_pct_total) FROM '{tmp_path / 'out'}/mart_carrier_participation.parquet'").fetchall()
    conn.close()
    assert got == want and total == want_total


def test_commands_say_what_to_do_without_a_warehouse(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "WHITESPACE_WAREHOUSE": str(tmp_path / "none.duckdb"), "HOME": str(tmp_path)}
    for command in (["dashboard", "--port", "0"], ["export"]):
        out = subprocess.run([sys.executable, "-m", "pipelines.app.cli", *command], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert "run 'whitespace-etl demo'" in out.stderr


def test_docs_describe_every_mart_column() -> None:
    text = (ROOT / "docs" / "analytics.md").read_text()
    for table in marts.MARTS:
        section = text.split(f"### `{table.name}`", 1)[1].split("###", 1)[0]
        for column in table.columns:
            assert f"| `{column.name}` |" in section and column.comment in section, (table.name, column.name)
