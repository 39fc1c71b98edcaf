"""The warehouse in PostgreSQL (``WHITESPACE_WAREHOUSE_URL``), on a private server: the organisations
loaded at once by several writer processes give, table by table, what one writer gives the DuckDB
file, through a first sync and a sync after the platform moved on; a sync killed at random points
leaves no organisation half loaded and the next one finishes with the clean result."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from models import MART_TABLES, metadata
from pipelines.app import retention
from pipelines.app.dashboard import data as dashboard
from pipelines.config import WarehouseConfig
from pipelines.warehouse import postgres
from sandbox import SandboxServer
from tests.postgres import differences, file_tables, postgres_tables, private_postgres
from tests.reliability.conftest import integrity_problems
from tests.reliability.test_processes import env_for, finish, start_sync

SEED, SCALE, WRITERS = 21, 0.1, 3  # the sandbox login's three organisations all at once
LEAVES = "MU3B2C4D50-7E6F-4081-9BAC-2D3E4F506172"  # the SUMO login's third organisation
MOVED_ON = {"ticks": 1, "changed_fraction": 0.2, "new_roots": 8, "removed_fraction": 0.1,
            "lines_changed_fraction": 0.2}
@pytest.fixture(scope="module")
def databases():
    with private_postgres("together", "killed", "documented") as urls:
        yield urls


def sync(server: SandboxServer, folder: Path, *args: str, **env: str) -> str:
    code, text = finish(start_sync(env_for(server, folder, **env), folder, *args))
    assert code == 0, text
    return text


@pytest.fixture(scope="module")
def one_writer(tmp_path_factory):
    """A first sync into the DuckDB file by the one writer it allows: its sandbox, its folder, its tables,
    and how long it took."""
    folder = tmp_path_factory.mktemp("file")
    with SandboxServer(seed=SEED, scale=SCALE) as server:
        started = time.monotonic()
        sync(server, folder)
        yield {"server": server, "folder": folder, "tables": file_tables(folder / "warehouse.duckdb"),
               "seconds": time.monotonic() - started}


def test_several_writers_into_postgresql_give_what_one_gives_the_duckdb_file(databases, one_writer, tmp_path) -> None:
    url = databases["together"]
    expected = one_writer["tables"]
    with SandboxServer(seed=SEED, scale=SCALE) as server:
        text = sync(server, tmp_path, "--writers", str(WRITERS), WHITESPACE_WAREHOUSE_URL=url)
        assert f"limited to {WRITERS}" in text and "warehouse PostgreSQL 127.0.0.1:" in text
        assert "etl@" not in text and "postgresql+psycopg2" not in text  # the URL is never printed whole
        assert len(expected["risks"]) > 50 and len(expected["market_lines"]) > 10 and len(expected["mi_report"]) > 10
        assert all(len(expected[t]) for t in MART_TABLES if t != "mart_carrier_participation")
        assert differences(expected, postgres_tables(url)) == {}
        assert not (tmp_path / "warehouse.duckdb").exists()  # nothing was written to a file

        # The platform moves on (changed, new and removed risks, changed line sets) and one organisation
        # leaves the login (it is retired): both follow it.
        for each in (one_writer["server"], server):
            each.admin("advance", **MOVED_ON)
            each.admin("leave", user_id=LEAVES)
        sync(one_writer["server"], one_writer["folder"])
        text = sync(server, tmp_path, "--writers", str(WRITERS), WHITESPACE_WAREHOUSE_URL=url)
        assert f"Retired {LEAVES}" in text
        expected = file_tables(one_writer["folder"] / "warehouse.duckdb")
        assert len(expected["risks_gone"]) > 0 and len(expected["risk_history"]) > len(expected["risks"])
        assert not [row for row in expected["risk_visibility"] if LEAVES in row]
        assert differences(expected, postgres_tables(url)) == {}
        quiet = sync(server, tmp_path, "--writers", str(WRITERS), WHITESPACE_WAREHOUSE_URL=url)
        assert "[marts] marts unchanged" in quiet, quiet  # their record of the loads they read, read back

    # PostgreSQL has the models' documentation and keys, and nothing twice.
    rows = postgres.query(WarehouseConfig(url=url), """
        SELECT obj_description('risks'::regclass, 'pg_class'),
               col_description('risks'::regclass, (SELECT attnum FROM pg_attribute
                                                   WHERE attrelid = 'risks'::regclass AND attname = 'umr')),
               (SELECT count(*) FROM pg_constraint WHERE conrelid = 'risks'::regclass AND contype IN ('u', 'p'))""")
    table_comment, column_comment, keys = rows[0]
    assert table_comment == metadata.tables["risks"].comment
    assert column_comment == metadata.tables["risks"].c.umr.comment
    assert keys == 1
    with postgres.read_copy(WarehouseConfig(url=url), [t.name for t in metadata.sorted_tables]) as conn:
        assert integrity_problems(conn) == []

    # The dashboard reads the marts from PostgreSQL itself (not a file, not the Parquet export).
    snap = dashboard.load(tmp_path / "no-such.duckdb", tmp_path / "no-marts", url)
    assert snap.source == "postgresql" and snap.as_of is not None
    assert {t: len(snap[t]) for t in MART_TABLES} == {t: len(expected[t]) for t in MART_TABLES}


def test_a_postgresql_sync_killed_at_random_points_leaves_no_half_organisation(databases, one_writer, tmp_path) -> None:
    url = databases["killed"]
    rng = random.Random(int(os.environ.get("WHITESPACE_KILL_SEED", "7")))
    with SandboxServer(seed=SEED, scale=SCALE) as server:
        env = env_for(server, tmp_path, WHITESPACE_WAREHOUSE_URL=url)
        for round_ in range(2):  # kills land at random points; the DuckDB kill test makes more rounds
            proc = start_sync(env, tmp_path, "--writers", str(WRITERS))
            time.sleep(rng.uniform(1.0, one_writer["seconds"]))
            os.killpg(proc.pid, signal.SIGKILL)  # the sync and its writer processes
            proc.wait(timeout=30)
            with postgres.read_copy(WarehouseConfig(url=url), [t.name for t in metadata.sorted_tables]) as conn:
                assert integrity_problems(conn) == [], f"round {round_}"
        code, text = finish(start_sync(env, tmp_path, "--writers", str(WRITERS)))
        assert code == 0, text
        found = differences(one_writer["tables"], postgres_tables(url))
        # raw_responses has a row per answer loaded: a killed sync's answers are there too (found twice if
        # it loaded them); every other table holds exactly the clean result.
        assert set(found) <= {"raw_responses"}, found

        # Pruning reads what PostgreSQL loaded: the answers the warehouse holds stay, superseded ones go.
        settings = WarehouseConfig(url=url, path=tmp_path / "warehouse.duckdb")
        pruned = retention.prune(settings, keep_days=0, log=lambda *_: None)
        current = postgres.query(settings, "SELECT r.path FROM raw_responses r JOIN sync_state s USING (user_id, sha256)")
        assert current and all((tmp_path / "raw" / path).exists() for (path,) in current)
        assert pruned.kept >= len(current)


def test_a_postgresql_warehouse_an_older_version_made_gets_the_models_documentation(databases) -> None:
    """As the DuckDB file (``test_warehouse.py``): comments an older version wrote, or left out, are the
    models' after the next process's first write; a column of the user's own keeps its own."""
    url = databases["documented"]
    postgres.ensure_schema(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # as an older version left it
        for statement in ("COMMENT ON COLUMN risks.status IS 'Status (in USD)'",
                          "COMMENT ON COLUMN sync_state.synced_at IS NULL",
                          "COMMENT ON TABLE risk_channels IS 'old words'",
                          "ALTER TABLE risks ADD COLUMN local_note TEXT",
                          "COMMENT ON COLUMN risks.local_note IS 'the analysts own'",
                          "ALTER TABLE risks DROP COLUMN umr"):  # a column a newer model added
            conn.execute(sa.text(statement))
    engine.dispose()
    postgres._SCHEMA_READY.discard(url)  # noqa: SLF001 - as a new process finds it
    postgres.ensure_schema(url)
    settings = WarehouseConfig(url=url)
    said = {(t, c): comment for t, c, comment in postgres.query(settings, """
        SELECT r.relname, a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a
        JOIN pg_class r ON r.oid = a.attrelid JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE n.nspname = 'public' AND r.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped""")}
    tables = dict(postgres.query(settings, """SELECT r.relname, obj_description(r.oid, 'pg_class') FROM pg_class r
        JOIN pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = 'public' AND r.relkind = 'r'"""))
    for table in metadata.sorted_tables:
        assert tables[table.name] == table.comment, table.name
        for column in table.columns:
            assert said[table.name, column.name] == column.comment, (table.name, column.name)
    assert said["risks", "local_note"] == "the analysts own"
