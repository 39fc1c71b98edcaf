"""A private PostgreSQL server for a test: Debian's ``initdb`` and ``pg_ctl`` on a free loopback port, in a
temporary directory, stopped and deleted afterwards (``tests/install-tools.sh`` installs the package)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port

USER = "etl"
NOW_DEPENDENT = {"loaded_at", "synced_at", "first_seen_at", "last_seen_at", "gone_at", "failed_at", "fetched_at",
                 "landed_at", "path", "as_of", "valid_from", "valid_to", "days_in_status", "built_at", "loads"}
"""Columns that hold when a sync ran (two syncs never run at the same instant). ``detail_loads.roots`` is
left out too: how many of a file's roots that load applied depends on which organisation sharing a root
loaded it first."""


def bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    assert initdb, "PostgreSQL's initdb is missing: run 'sh tests/install-tools.sh' (it installs Debian's postgresql)"
    return Path(initdb).parent


@contextlib.contextmanager
def private_postgres(*databases: str) -> Iterator[dict[str, str]]:
    """Yields a SQLAlchemy URL (``postgresql+psycopg2://``) per database in ``databases``."""
    bin_ = bindir()
    root = Path(tempfile.mkdtemp(prefix="whitespace-pg-"))
    data = root / "data"
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user owns the data directory
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        out = subprocess.run([*as_owner, *args], capture_output=True, text=True, cwd=root)
        assert out.returncode == 0, f"{args[0]} failed: {out.stdout}{out.stderr}"

    run(str(bin_ / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
    run(str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        for db in databases:
            run(str(bin_ / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, db)
        yield {db: f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/{db}" for db in databases}
    finally:
        subprocess.run([*as_owner, str(bin_ / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


def tables(conn, schema: str = "main") -> dict[str, list[tuple]]:
    """Every table of the models, its rows sorted, without the columns that hold when the sync ran."""
    from models import metadata

    out = {}
    for table in metadata.sorted_tables:
        columns = [f'"{c.name}"::FLOAT' if str(c.type) == "FLOAT" else f'"{c.name}"' for c in table.columns
                   if c.name not in NOW_DEPENDENT and not (table.name == "detail_loads" and c.name == "roots")]
        rows = conn.execute(f'SELECT {", ".join(columns)} FROM {schema}."{table.name}"').fetchall()
        out[table.name] = sorted(rows, key=repr)
    return out


def file_tables(path: Path) -> dict[str, list[tuple]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        return tables(conn)


def postgres_tables(url: str) -> dict[str, list[tuple]]:
    """The same, read from a PostgreSQL warehouse."""
    from models import metadata
    from pipelines.config import WarehouseConfig
    from pipelines.warehouse import postgres

    with postgres.read_copy(WarehouseConfig(url=url), [t.name for t in metadata.sorted_tables]) as conn:
        return tables(conn)


def differences(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> dict[str, tuple[int, int]]:
    """Tables whose rows differ, with their row counts on each side."""
    return {t: (len(a[t]), len(b[t])) for t in a if a[t] != b[t]}
