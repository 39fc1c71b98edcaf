"""Dagster's SQLite event log, kept connected for the runs ``whitespace-etl sync`` executes in its own
process.

Dagster's ``SqliteEventLogStorage`` builds an SQLAlchemy engine, connects, and disposes of the engine
again for every event it stores and for every check that one of its tables exists: about 12 ms an
event on the build machine, and a run over thirteen organisations stores about 400 events (each
table's materialization is planned, then recorded, per organisation). ``keep_connected`` gives one
instance's event log an engine per database file for as long as the instance is open: the same
statements in the same transactions, without a new engine and connection each time. Every write is
still committed when its event is stored, so another process (``dagster dev``, a worker of
``sync --writers``) sees it as before. An event log in PostgreSQL, or any other, is left alone.

Those commits wait for the operating system, not for the disk: SQLite's ``synchronous=NORMAL`` in the WAL
mode Dagster gives these files, where each commit would otherwise wait for an ``fdatasync`` (1-2 ms on
the build machine; a 1% resync of the benchmark's three organisations waited 811 times, 86 with this).
A process that is killed or crashes loses nothing. A power cut or an operating-system crash may lose
the events of the last moments before it; SQLite guarantees the file is not corrupted. No decision of
the sync rests on these events alone: what changed and whether the marts are current are
read from the warehouse, and a run whose last events were lost looks unfinished until the next sync
marks it failed (``release_dead_runs``). Runs that ``dagster dev`` or the daemon start use Dagster's
storage as it is.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

KEPT = 8
"""Engines kept at once (the index and the runs most recently written); the oldest is disposed of."""


def keep_connected(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """``instance`` with its SQLite event log keeping its engines (see the module); returns it."""
    storage = instance.event_log_storage
    if type(storage) is not SqliteEventLogStorage or hasattr(storage, "_whitespace_engines"):
        return instance
    engines: collections.OrderedDict[str, Engine] = collections.OrderedDict()
    tables: set[str] = set()
    has_table, dispose = storage.has_table, storage.dispose

    @contextlib.contextmanager
    def connect(shard: str) -> Iterator[Connection]:
        # Dagster's own _connect, less the engine made and disposed of each time.
        with storage._db_lock:  # noqa: SLF001 - the lock Dagster's _connect holds
            engine = engines.pop(shard, None) or _engine(storage.conn_string_for_shard(shard))
            engines[shard] = engine
            while len(engines) > KEPT:
                engines.popitem(last=False)[1].dispose()
            if shard not in storage._initialized_dbs:  # noqa: SLF001
                storage._initdb(engine)  # noqa: SLF001
                storage._initialized_dbs.add(shard)  # noqa: SLF001
            with engine.connect() as conn, conn.begin():
                yield conn

    def table_exists(name: str) -> bool:
        # A table of the event log, once there, stays: only its absence is asked again.
        if name not in tables and has_table(name):
            tables.add(name)
        return name in tables

    def dispose_all() -> None:
        while engines:
            engines.popitem()[1].dispose()
        dispose()

    storage._connect = connect  # noqa: SLF001 - every run and index connection goes through it
    storage.has_table = table_exists
    storage.dispose = dispose_all
    storage._whitespace_engines = engines  # noqa: SLF001 - for the tests, and applied once
    return instance


def _engine(url: str) -> Engine:
    """An engine for one of the event log's SQLite files whose commits wait for the operating system, not
    for the disk: ``synchronous=NORMAL`` in WAL mode (see the module). Dagster puts each file in WAL mode
    once it has created its tables; a new run's file is put in it first, so that creating them does not
    wait for the disk either (about 65 waits a run here)."""
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    return engine
