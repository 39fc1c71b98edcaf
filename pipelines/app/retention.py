"""Retention of the raw landing (``whitespace-etl prune``): what may be deleted, and what never is.

The landing keeps every answer as received, so it grows with every sync. Pruning deletes an answer
only when all of these hold:

- it is older than ``WHITESPACE_RAW_KEEP_DAYS`` (by the time it was landed, from its file name);
- the warehouse has loaded it (a pending answer is never lost; the newest two of a list are kept anyway);
- ``whitespace-etl rebuild`` would not read anything from it: a risk or corporate list that is not
  the newest two of its organisation nor the one loaded; a file of contracts and line sets holding no
  root's newest line; an MI report answer holding no placement's newest row (the same "newest wins"
  rule the loaders apply, so a rebuild after pruning gives the same tables).

Partial files (``*.part``, ``.part-*``) that a killed download or write left behind are deleted once
an hour old (a download in progress keeps writing to its own). Cursors and indexes (``feed.json``,
``index.json``) and the lock files are never touched. Pruning runs as a warehouse writer, so no load
reads the landing while it deletes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import duckdb

from pipelines.config import WarehouseConfig
from pipelines.landing import raw
from pipelines.warehouse import db

ABANDONED_AFTER = dt.timedelta(hours=1)
"""A partial file untouched this long belongs to a download or write that was killed."""
LISTS_KEPT = 2
"""The newest answers kept per organisation and list, whatever their age: the newest is what a rebuild
loads, the one before it is what a shrinking answer is compared with."""
STAMP = re.compile(r"^(\d{8}T\d{12})Z")

NEWEST_DETAIL_LINES = """
SELECT DISTINCT filename FROM (
  SELECT filename FROM read_json(?, format = 'newline_delimited', filename = true,
                                 columns = {{root_id: 'VARCHAR', gone: 'BOOLEAN'}}{options})
  WHERE NOT coalesce(gone, FALSE) AND root_id IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY root_id ORDER BY filename DESC) = 1)
"""
"""Files holding some root's newest line (as ``details.STAGE`` picks it; files of one organisation)."""

NEWEST_MI_ROWS = """
SELECT DISTINCT filename FROM (
  SELECT filename FROM read_json_objects(?, format = 'array', filename = true{options})
  WHERE coalesce(json->>'rootID', '') <> ''
  QUALIFY row_number() OVER (PARTITION BY json->>'rootID' ORDER BY filename DESC) = 1)
"""
"""Files holding some placement's newest MI row (as ``mireport.STAGE`` picks it; one organisation)."""


@dataclasses.dataclass
class Pruned:
    files: int = 0
    """Landed answers deleted (a body and its manifest count as one)."""
    partial: int = 0
    """Partial files of killed downloads or writes deleted."""
    bytes: int = 0
    kept: int = 0
    """Landed answers kept."""
    deleted: list[str] = dataclasses.field(default_factory=list)
    """Paths relative to the raw directory."""


def landed_at(path: Path) -> dt.datetime | None:
    """When an answer was landed, from its file name (``20261129T031546604232Z.json``)."""
    m = STAMP.match(path.name)
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.UTC) if m else None


def _loaded(conn: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    return {r[0] for r in conn.execute(sql).fetchall() if r[0]}


def _newest_holders(sql: str, files: list[Path]) -> set[Path]:
    if not files:
        return set()
    with duckdb.connect() as mem:
        return {Path(r[0]) for r in raw.read_objects(mem, sql, [[str(f) for f in files]], files)}


BOOKKEEPING = ("raw_responses", "sync_state", "detail_loads", "mi_report_loads")
"""What ``candidates`` reads of the warehouse."""


def _bookkeeping(warehouse: WarehouseConfig):
    """The warehouse's record of what it loaded: the file itself (as a writer, so no load changes it
    meanwhile), or a copy of those tables from a PostgreSQL warehouse. There, a load that commits while
    pruning runs can only add to what is loaded: what this copy calls loaded stays loaded."""
    import contextlib

    if warehouse.url:
        from pipelines.warehouse import postgres

        return contextlib.closing(postgres.read_copy(warehouse, BOOKKEEPING))
    return db.session(warehouse)


def candidates(conn: duckdb.DuckDBPyConnection, raw_dir: Path, keep_days: float, now: dt.datetime) -> tuple[list[Path], int]:
    """The landed files pruning may delete (bodies; a list's manifest goes with it) and how many are kept."""
    cutoff = now - dt.timedelta(days=keep_days)
    current_lists = _loaded(conn, "SELECT r.path FROM raw_responses r JOIN sync_state s USING (user_id, sha256)")
    loaded_details = _loaded(conn, "SELECT path FROM detail_loads")
    loaded_mi = _loaded(conn, "SELECT path FROM mi_report_loads")
    delete: list[Path] = []
    kept = 0

    def old(p: Path) -> bool:
        stamp = landed_at(p)
        return stamp is not None and stamp < cutoff

    def rel(p: Path) -> str:
        return p.relative_to(raw_dir).as_posix()

    for org in sorted(p for p in Path(raw_dir).iterdir() if p.is_dir()):
        for folder in sorted(p for p in org.iterdir() if p.is_dir()):
            if folder.name == raw.DETAILS_FOLDER:
                files = sorted(folder.glob("*.jsonl"))
                needed = _newest_holders(NEWEST_DETAIL_LINES, files)
                loaded = loaded_details
            elif folder.name == raw.MI_FOLDER:
                files = sorted(folder.glob("*.json"))
                needed = _newest_holders(NEWEST_MI_ROWS, files)
                loaded = loaded_mi
            else:  # a list endpoint: bodies with a manifest beside each
                files = sorted(m.with_name(m.name.removesuffix(".meta.json") + ".json")
                               for m in folder.glob("*.meta.json"))
                files = [f for f in files if f.exists()]
                # the newest two, and the one the warehouse holds (sync_state names it) even when older
                needed = set(files[-LISTS_KEPT:])
                needed |= {f for f in files if rel(f) in current_lists}
                loaded = None  # the newest two include any answer not loaded yet
            for f in files:
                if f in needed or not old(f) or (loaded is not None and rel(f) not in loaded):
                    kept += 1
                else:
                    delete.append(f)
    return delete, kept


def partial_files(raw_dir: Path, now: dt.datetime) -> list[Path]:
    """Partial files no writer has touched for ``ABANDONED_AFTER``."""
    limit = (now - ABANDONED_AFTER).timestamp()
    found = [p for p in Path(raw_dir).rglob("*") if p.is_file()
             and (p.name.endswith(".part") or p.name.startswith(".part-"))]
    return sorted(p for p in found if p.stat().st_mtime < limit)


def prune(warehouse: WarehouseConfig, keep_days: float, dry_run: bool = False,
          now: dt.datetime | None = None, log: Callable[[str], object] = print) -> Pruned:
    """Deletes what ``candidates`` and ``partial_files`` find (nothing when ``dry_run``)."""
    now = now or dt.datetime.now(dt.UTC)
    raw_dir = warehouse.raw_dir
    out = Pruned()
    if not Path(raw_dir).exists():
        return out
    with _bookkeeping(warehouse) as conn:
        delete, out.kept = candidates(conn, raw_dir, keep_days, now)
        partial = partial_files(raw_dir, now)
        for f in delete:
            meta = f.with_name(f.name.removesuffix(".json") + ".meta.json")
            for p in (f, meta) if f.suffix == ".json" else (f,):
                if p.exists():
                    out.bytes += p.stat().st_size
                    if not dry_run:
                        p.unlink()
            out.files += 1
            out.deleted.append(f.relative_to(raw_dir).as_posix())
        for p in partial:
            out.bytes += p.stat().st_size
            if not dry_run:
                p.unlink(missing_ok=True)
            out.partial += 1
            out.deleted.append(p.relative_to(raw_dir).as_posix())
    verb = "Would delete" if dry_run else "Deleted"
    log(f"{verb} {out.files:,} landed answer{'s' if out.files != 1 else ''} and {out.partial:,} partial "
        f"file{'s' if out.partial != 1 else ''} ({out.bytes / 1e6:,.1f} MB); kept {out.kept:,} "
        f"(newer than {keep_days:g} days, not loaded yet, or needed by 'whitespace-etl rebuild').")
    return out
