"""Opening the DuckDB warehouse and keeping its schema in step with ``models``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa

from models import CHILD_TABLE_COLUMNS, metadata
from pipelines.client.errors import WhitespaceError
from pipelines.config import WarehouseConfig
from pipelines.warehouse import macros

log = logging.getLogger("whitespace.warehouse")


@functools.cache
def _dialect() -> sa.engine.Dialect:
    """DuckDB's SQLAlchemy dialect, for DDL; imported on first use (a load into existing tables needs none)."""
    import duckdb_engine

    return duckdb_engine.Dialect()


_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")



def ident(name: str) -> str:
    """A table or column name made from data, checked to be plain before it enters SQL."""
    if not _IDENT.match(name):
        raise ValueError(f"unsafe identifier {name!r}")
    return f'"{name}"'


class WarehouseLocked(WhitespaceError):
    """Another process (a sync, a BI tool holding the file open for writing) kept the warehouse locked."""

    def __init__(self, path: Path, waited: float) -> None:
        super().__init__(
            f"The warehouse {path} is locked by another process (another sync, or a tool holding it open for "
            f"writing); waited {waited:.0f} s. Close that tool or let the other sync finish, then run again "
            "(WHITESPACE_LOCK_WAIT_SECONDS sets how long to wait).")
        self.path = path


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text or "database is locked" in text


def _config(where: WarehouseConfig | str | Path) -> WarehouseConfig:
    return where if isinstance(where, WarehouseConfig) else WarehouseConfig(path=Path(where))


def connect(where: WarehouseConfig | str | Path, read_only: bool = False, wait: float | None = None
            ) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; if another process holds it, wait (with a clear log line) up to ``wait`` s
    (default: the configuration's lock wait), then raise ``WarehouseLocked``."""
    settings = _config(where)
    wait = settings.lock_wait_seconds if wait is None else wait
    path = settings.path
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    delay = 0.05
    warned = False
    config = {"memory_limit": settings.memory_limit}
    if not read_only:
        config["temp_directory"] = str(path.parent / f".{path.name}.tmp")
        # The format of a file created now; an existing file keeps its own through every write.
        config["storage_compatibility_version"] = settings.storage_version
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                if _is_lock_error(exc):
                    raise WarehouseLocked(path, wait) from None
                raise
            if not warned:
                log.warning("Warehouse %s is in use by another process; waiting up to %.0f s", path, wait)
                warned = True
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 2.0)


_TURNS = threading.local()
WRITER_QUEUE_SECONDS = 3600.0
"""How long a writer of this project waits for another of its writers (they queue; each one is finite)."""


@contextlib.contextmanager
def writer_turn(path: str | Path) -> Iterator[None]:
    """One writer of this project at a time, across processes: an exclusive ``flock`` on a file beside
    the warehouse, taken before DuckDB's own lock. Dagster's warehouse pool already keeps the steps
    apart, but on its default SQLite storage two run processes can claim the pool's one slot at the
    same moment; this queue holds then too. The kernel drops the lock when a process dies."""
    import fcntl

    path = Path(path).resolve()
    held = _TURNS.__dict__.setdefault("paths", set())
    if path in held:  # a writer nested in this thread's own turn: it is already this thread's turn
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.writer", "a") as handle:
        deadline = time.monotonic() + WRITER_QUEUE_SECONDS
        warned = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(path, WRITER_QUEUE_SECONDS) from None
                if not warned:
                    log.info("Waiting for another writer of %s to finish", path)
                    warned = True
                time.sleep(0.05)
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
            fcntl.flock(handle, fcntl.LOCK_UN)


def session(where: WarehouseConfig | str | Path, read_only: bool = False, scope=None
            ) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse; a writer first waits its turn among this project's writers.

    With a PostgreSQL warehouse (``WarehouseConfig.url``) a writer names what it reads and writes
    (``scope``, a ``postgres.Scope``) and gets a DuckDB copy of that, written back in one transaction."""
    settings = _config(where)
    if settings.url:
        from pipelines.warehouse import postgres

        if read_only or scope is None:
            raise WhitespaceError("This command reads the DuckDB file; the warehouse is in PostgreSQL "
                                  "(WHITESPACE_WAREHOUSE_URL): query it there (psql, a BI tool).")
        return postgres.session(settings, scope)
    return _file_session(settings, read_only)


@contextlib.contextmanager
def sessions(where: WarehouseConfig | str | Path) -> Iterator[Callable[[Any], contextlib.AbstractContextManager]]:
    """Writer sessions for several loads in a row (a run of several organisations): ``open(scope)`` is
    each one's session. The DuckDB file is opened, and its schema checked, once for them all, each load
    still committing in its own transaction (as ``rebuild`` does); PostgreSQL: a session per load (its scope)."""
    settings = _config(where)
    if settings.url:
        yield lambda scope: session(settings, scope=scope)
        return
    with _file_session(settings, read_only=False) as conn:
        yield lambda scope: contextlib.nullcontext(conn)


def row_count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    """The rows of ``table``; inside a PostgreSQL load, as they will be once the load commits."""
    from pipelines.warehouse import postgres

    return postgres.row_count(conn, table)


@contextlib.contextmanager
def _written_beside(path: Path, suffix: str) -> Iterator[Path]:
    """A whole new file for ``path``: the caller writes the yielded temporary file beside it, which is
    renamed over ``path`` once the caller is done. A process killed before that leaves ``path`` as it
    was and only the temporary file, which the next writer deletes (with its write-ahead log)."""
    draft = path.with_name(f".{path.name}.{suffix}")
    for leftover in (draft, draft.with_name(draft.name + ".wal")):
        leftover.unlink(missing_ok=True)
    yield draft
    os.replace(draft, path)


def _create(settings: WarehouseConfig) -> None:
    """A new warehouse file appears only with its whole schema, so a reader never finds one without its
    tables."""
    with _written_beside(settings.path, "new") as draft:
        conn = connect(dataclasses.replace(settings, path=draft))
        try:
            ensure_schema(conn)
            conn.execute("CHECKPOINT")
        finally:
            conn.close()


@contextlib.contextmanager
def _file_session(settings: WarehouseConfig, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    with contextlib.nullcontext() if read_only else writer_turn(settings.path):
        created = not read_only and not settings.path.exists()
        if created:
            _create(settings)
        conn = connect(settings, read_only=read_only)
        try:
            if not read_only and not created:  # a file just created holds the whole schema already
                ensure_schema(conn)
            yield conn
        finally:
            conn.close()


@contextlib.contextmanager
def beside(conn: duckdb.DuckDBPyConnection, fn: Callable[..., Any], *args: Any) -> Iterator[Future]:
    """``fn(other, *args)`` on a second connection to ``conn``'s database, in a thread, while the caller goes
    on with ``conn``: DuckDB reads a JSON array on one thread, so a second pass over the same file costs
    the first almost nothing. Yields its future; leaving waits for it, then closes that connection."""
    with conn.cursor() as other, ThreadPoolExecutor(1) as pool:
        yield pool.submit(fn, other, *args)


@contextlib.contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def storage_version(conn: duckdb.DuckDBPyConnection) -> str:
    """The storage format of the open warehouse file, e.g. ``v1.4.0+``."""
    row = conn.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                       "WHERE database_name = current_database()").fetchone()
    return str(row[0]) if row and row[0] else "unknown"


def _version_key(version: str) -> tuple[float, ...]:
    numbers = re.findall(r"\d+", version)
    return tuple(float(n) for n in numbers[:3]) if numbers and version != "latest" else (float("inf"),)


def newer_than_configured(conn: duckdb.DuckDBPyConnection, settings: WarehouseConfig) -> str | None:
    """The file's storage version when it is newer than ``WHITESPACE_DUCKDB_STORAGE_VERSION`` (readers of
    the configured version cannot open it), else None."""
    found = storage_version(conn)
    return found if found != "unknown" and _version_key(found) > _version_key(settings.storage_version) else None


def migrate_storage(where: WarehouseConfig | str | Path, log=print) -> tuple[str, str]:
    """Rewrites the warehouse in the configured storage version (every table, its data and comments),
    as a new file beside it renamed over it: a crash leaves the old file whole. Returns (from, to)."""
    settings = _config(where)
    path = settings.path
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}")
    with writer_turn(path):
        with contextlib.closing(connect(settings, read_only=True)) as old:
            before = storage_version(old)
        with _written_beside(path, "migrating") as target:
            conn = duckdb.connect(config={"memory_limit": settings.memory_limit,
                                          "storage_compatibility_version": settings.storage_version})
            try:
                conn.execute(f"ATTACH {_quote_literal(str(path))} AS old (READ_ONLY)")
                conn.execute(f"ATTACH {_quote_literal(str(target))} AS new "
                             f"(STORAGE_VERSION {_quote_literal(settings.storage_version)})")
                conn.execute("COPY FROM DATABASE old TO new")
                comments = conn.execute(
                    """SELECT table_name, NULL, comment FROM duckdb_tables() WHERE database_name = 'old' AND comment IS NOT NULL
                       UNION ALL SELECT table_name, column_name, comment FROM duckdb_columns()
                       WHERE database_name = 'old' AND comment IS NOT NULL""").fetchall()
                for table, column, comment in comments:
                    what = f"TABLE new.{ident(table)}" if column is None else f"COLUMN new.{ident(table)}.{ident(column)}"
                    conn.execute(f"COMMENT ON {what} IS {_quote_literal(comment)}")
                conn.execute("DETACH new")
                conn.execute("DETACH old")
            finally:
                conn.close()
            with contextlib.closing(duckdb.connect(str(target), read_only=True)) as check:
                after = storage_version(check)
    log(f"{path}: storage {before} -> {after}")
    return before, after


def existing_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def _type_sql(column: sa.Column) -> str:
    return column.type.compile(dialect=_dialect())


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_table(conn: duckdb.DuckDBPyConnection, table: sa.Table, have: list[str] | None = None) -> list[str]:
    """Create ``table`` or add the columns it lacks (never drops anything); returns columns added.
    ``have``: its columns, when the caller read them already."""
    have = existing_columns(conn, table.name) if have is None else have
    added: list[str] = []
    if not have:
        conn.execute(str(sa.schema.CreateTable(table).compile(dialect=_dialect())))
        if table.comment:
            conn.execute(f"COMMENT ON TABLE {ident(table.name)} IS {_quote_literal(table.comment)}")
        added = [c.name for c in table.columns]
    else:
        for column in table.columns:
            if column.name not in have:
                conn.execute(f"ALTER TABLE {ident(table.name)} ADD COLUMN {ident(column.name)} {_type_sql(column)}")
                added.append(column.name)
    for column in table.columns:
        if column.name in added and column.comment:
            conn.execute(
                f"COMMENT ON COLUMN {ident(table.name)}.{ident(column.name)} IS {_quote_literal(column.comment)}"
            )
    return added


def _catalogue(conn: duckdb.DuckDBPyConnection) -> tuple[dict[str, list[str]], dict[tuple[str, str | None], str | None]]:
    """Each table's columns in order, and the comment on each table (column None) and column."""
    have: dict[str, list[str]] = {}
    said: dict[tuple[str, str | None], str | None] = {}
    for table, column, comment in conn.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY table_name, column_index").fetchall():
        have.setdefault(table, []).append(column)
        said[table, column] = comment
    said.update({(t, None): comment for t, comment in conn.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main'").fetchall()})
    return have, said


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Every table of the models, with every column they declare and the comments the models give them
    (a warehouse an older version made gets corrected ones: BI tools show them as the data dictionary);
    two catalogue queries, as a load opens a session per organisation."""
    have, said = _catalogue(conn)
    if any(table.name not in have or {c.name for c in table.columns} - set(have[table.name])
           for table in metadata.sorted_tables):
        with transaction(conn):  # one commit for the whole schema, not one per statement
            for table in metadata.sorted_tables:
                ensure_table(conn, table, have.get(table.name, []))
        have, said = _catalogue(conn)  # rare: a new file, or a newer model
    stale = [(f"TABLE {ident(table.name)}", table.comment) for table in metadata.sorted_tables
             if said.get((table.name, None)) != table.comment]
    stale += [(f"COLUMN {ident(table.name)}.{ident(column.name)}", column.comment)
              for table in metadata.sorted_tables for column in table.columns
              if said.get((table.name, column.name)) != column.comment]
    with transaction(conn):  # one commit a session, not one a macro
        for target, text in stale:
            conn.execute(f"COMMENT ON {target} IS {'NULL' if text is None else _quote_literal(text)}")
        macros.install(conn)


def child_table(parent: str, field: str, conn: duckdb.DuckDBPyConnection | None = None) -> sa.Table:
    """The ``<parent>__<field>`` table for a list-valued field the schema does not declare. When that
    name already holds another field whose name normalises the same way (``fooBar``, ``foo_bar``), a
    short hash of the field's own name is added, so neither overwrites the other."""
    name = f"{parent}__{snake(field)}"
    if conn is not None:
        held = conn.execute("SELECT comment FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()
        if held is not None and f"'{field}'" not in (held[0] or ""):
            name = f"{name}_{hashlib.sha1(field.encode()).hexdigest()[:6]}"
    return sa.Table(
        name,
        sa.MetaData(),
        *[sa.Column(n, t, comment=c) for n, t, c in CHILD_TABLE_COLUMNS],
        comment=f"Elements of the '{field}' list of {parent} (created when the field first appeared).",
        info={"key": ("parent_id", "position")},
    )


def risk_child_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The ``risks__<field>`` tables the warehouse has (made when a list-valued field first appeared)."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_name LIKE 'risks\\_\\_%' ESCAPE '\\'"
    ).fetchall()
    return [r[0] for r in rows]


def snake(name: str) -> str:
    """``placingBrokerChannel`` -> ``placing_broker_channel``; anything else becomes ``_``."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    name = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return name if name and not name[0].isdigit() else f"f_{name}"
