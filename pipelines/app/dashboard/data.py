"""What the dashboard reads, and from where: the warehouse opened read-only for a moment, or, while
a sync holds it for writing, the Parquet export of the marts the last sync wrote. No Streamlit here."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from models import MART_TABLES
from pipelines.warehouse import db

READ_WAIT_SECONDS = 0.5
"""How long a page load waits for a writer before it reads the Parquet export instead."""


class NoMarts(RuntimeError):
    """Neither the warehouse nor an export has marts yet."""


@dataclasses.dataclass
class Snapshot:
    frames: dict[str, pd.DataFrame]
    source: str  # "warehouse", "postgresql" or "parquet"
    as_of: dt.datetime | None  # when the data was synced (warehouse) or exported (parquet)
    note: str = ""

    def __getitem__(self, table: str) -> pd.DataFrame:
        return self.frames[table]


def _from_warehouse(path: Path) -> Snapshot:
    conn = db.connect(path, read_only=True, wait=READ_WAIT_SECONDS)
    try:
        have = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        missing = [t for t in MART_TABLES if t not in have]
        if missing:
            raise NoMarts(f"The warehouse {path} has no marts yet ({', '.join(missing)}): run a sync.")
        frames = {t: conn.execute(f"SELECT * FROM {db.ident(t)}").df() for t in MART_TABLES}  # noqa: S608
        synced = conn.execute("SELECT max(synced_at) FROM sync_state").fetchone()[0]
    finally:
        conn.close()
    return Snapshot(frames, "warehouse", synced)


def _from_parquet(directory: Path, note: str) -> Snapshot:
    files = {t: directory / f"{t}.parquet" for t in MART_TABLES}
    missing = [t for t, f in files.items() if not f.exists()]
    if missing:
        raise NoMarts(f"{note} and there is no Parquet export of the marts in {directory} yet.")
    conn = duckdb.connect()
    try:
        frames = {t: conn.execute("SELECT * FROM read_parquet(?)", [str(f)]).df() for t, f in files.items()}
    finally:
        conn.close()
    newest = max(f.stat().st_mtime for f in files.values())
    return Snapshot(frames, "parquet", dt.datetime.fromtimestamp(newest, dt.UTC).replace(tzinfo=None), note)


def _from_postgres(url: str, marts_dir: Path) -> Snapshot:
    from pipelines.config import WarehouseConfig
    from pipelines.warehouse import postgres

    try:
        conn = postgres.read_copy(WarehouseConfig(url=url), [*MART_TABLES, "sync_state"])
    except postgres.PostgresUnavailable as exc:
        return _from_parquet(marts_dir, str(exc))
    with conn:
        synced = conn.execute("SELECT max(synced_at) FROM sync_state").fetchone()[0]
        if synced is None:
            raise NoMarts("The PostgreSQL warehouse has no marts yet: run a sync.")
        frames = {t: conn.execute(f"SELECT * FROM {db.ident(t)}").df() for t in MART_TABLES}  # noqa: S608
    return Snapshot(frames, "postgresql", synced)


def load(db_path: Path, marts_dir: Path, url: str = "") -> Snapshot:
    """The marts as they stand. A sync that is writing holds the warehouse's lock: then the export the
    previous sync wrote is read instead, and the snapshot says so. ``url``: the warehouse in PostgreSQL
    (readers never wait there; its Parquet export is read only when it cannot be reached)."""
    if url:
        return _from_postgres(url, marts_dir)
    if not db_path.exists():
        if any(marts_dir.glob("*.parquet")):
            return _from_parquet(marts_dir, f"No warehouse at {db_path}")
        raise NoMarts(f"No warehouse at {db_path}: run 'whitespace-etl demo' (or 'whitespace-etl sync') first.")
    try:
        return _from_warehouse(db_path)
    except db.WarehouseLocked:
        return _from_parquet(marts_dir, "A sync is writing the warehouse; showing the marts it exported last")
