"""What the warehouse has loaded, for the change check (``pipelines.extract.changes``)."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import duckdb

from pipelines.client import endpoints
from pipelines.config import WarehouseConfig
from pipelines.extract.changes import WarehouseState
from pipelines.landing.raw import MI_FOLDER
from pipelines.warehouse import db, marts
from pipelines.warehouse import details as detail_loader
from pipelines.warehouse import mireport as mi_loader


def read(warehouse: WarehouseConfig, user_ids: list[str]) -> WarehouseState | None:
    """None when it cannot be read now (another process holds it): every check then says "changed".
    It never waits for the lock."""
    raw_dir = warehouse.raw_dir
    if warehouse.url:
        from pipelines.warehouse import postgres

        try:
            conn = postgres.read_copy(warehouse, ("sync_state", "raw_responses", "detail_failures", "detail_loads",
                                                  "mi_report_loads", "marts_state"))
        except postgres.PostgresUnavailable:
            return None
        with conn:
            return _read(conn, raw_dir, user_ids)
    if not Path(warehouse.path).exists():
        return WarehouseState({}, None, set(), mi_waiting=any(Path(raw_dir).glob(f"*/{MI_FOLDER}/*.json")))
    try:
        with contextlib.closing(db.connect(warehouse, read_only=True, wait=0)) as conn:
            return _read(conn, raw_dir, user_ids)
    except (duckdb.Error, db.WarehouseLocked):
        return None


def _read(conn: duckdb.DuckDBPyConnection, raw_dir: Path, user_ids: list[str]) -> WarehouseState:
    loaded = dict(conn.execute("SELECT user_id, sha256 FROM sync_state").fetchall())
    corporate = conn.execute(
        "SELECT sha256 FROM raw_responses WHERE user_id = '' AND endpoint = ? "
        "ORDER BY fetched_at DESC LIMIT 1", [endpoints.CORPORATE]).fetchall()
    failed = {r[0] for r in conn.execute("SELECT DISTINCT user_id FROM detail_failures").fetchall()}
    waiting = {u for u in user_ids if detail_loader.pending(conn, raw_dir, u)}
    mi_waiting = bool(mi_loader.pending(conn, raw_dir))
    return WarehouseState(loaded, corporate[0][0] if corporate else None, failed | waiting, mi_waiting,
                          _marts_built(conn))


def _marts_built(conn: duckdb.DuckDBPyConnection) -> tuple[float, int] | None:
    """When the marts were built and with which open-item age, if from every load the warehouse holds. A
    warehouse an older version made has no record yet (its table comes with the next write): not built."""
    if not db.existing_columns(conn, "marts_state"):
        return None
    rows = conn.execute(marts.BUILT_FROM).fetchall()
    return (rows[0][0].replace(tzinfo=dt.UTC).timestamp(), rows[0][1]) if rows else None
