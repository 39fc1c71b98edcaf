"""The warehouse in PostgreSQL (``WHITESPACE_WAREHOUSE_URL``), with DuckDB still doing the normalising.

Each load (one organisation's risk list, its detail files, the MI answers, the reference list, the
marts) runs the same DuckDB code as the file warehouse, against an in-memory DuckDB that holds the
*scope* of that load: the rows of its organisations (``user_id``) and of every root it can touch (the
roots in its landed files and the roots its organisations see). In one PostgreSQL transaction:

1. advisory locks on the load's organisations, then on its roots (in one order, so two loads never
   wait on each other in a cycle); loads of other organisations and roots run at the same time;
2. the scope's rows are read into DuckDB (ADBC, Arrow, PostgreSQL's binary COPY);
3. the loader runs in DuckDB, exactly as against the file;
4. the scope's rows are replaced in PostgreSQL by DuckDB's (deleted, then copied in bulk), the
   append-only tables get the new rows, ``schema_drift`` is upserted;
5. commit. A reader sees the partition before or after, never half; a killed load changes nothing.

A load that is neither one organisation's nor its roots' (reference data, MI, marts) also takes a
lock of its own name, so two of a kind follow each other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import duckdb
import sqlalchemy as sa

from models import CHILD_TABLE_COLUMNS, MART_TABLES, metadata
from pipelines.client.errors import WhitespaceError
from pipelines.config import WarehouseConfig
from pipelines.warehouse import db

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("whitespace.warehouse")

USER_KEYED = ("sync_state", "raw_responses", "detail_failures", "detail_loads", "mi_report", "mi_report_carriers",
              "mi_report_loads", "quarantine")
"""Rows that belong to one organisation (``user_id``)."""
APPEND_ONLY = ("risks_gone", "contracts_gone")
"""Tables a load only adds to: nothing is read, the new rows are copied in."""
UPSERTED = {name: tuple(c.name for c in metadata.tables[name].primary_key.columns) for name in ("schema_drift",)}
"""Shared by every load; merged by the model's whole primary key (two loads may report the same field at
once; PostgreSQL's ``ON CONFLICT`` needs the key of a constraint, so part of it fails every load)."""
CHILD_PREFIX = "risks__"


def root_expression(table: str, columns: Iterable[str]) -> str:
    """How a row of ``table`` names its root (the text before the first ``::`` of a document id)."""
    columns = set(columns)
    if "root_id" in columns:
        return "root_id"
    if "risk_id" in columns:
        return "split_part(risk_id, '::', 1)"
    if "parent_id" in columns and table.startswith(CHILD_PREFIX):
        return "split_part(parent_id, '::', 1)"
    raise ValueError(f"{table} has no root column")


class PostgresUnavailable(WhitespaceError):
    """The PostgreSQL warehouse cannot be reached or used."""


@dataclasses.dataclass(frozen=True)
class Scope:
    """What one load reads and writes in a PostgreSQL warehouse."""

    writes: tuple[str, ...]
    """Tables the load writes: their scope's rows are replaced (``whole`` ones: the whole table)."""
    reads: tuple[str, ...] = ()
    """Tables it only reads (scoped the same way)."""
    users: tuple[str, ...] = ()
    """Its organisations (MU ids); ``''`` is the login-less reference data."""
    users_from: Callable[[duckdb.DuckDBPyConnection], Iterable[str]] | None = None
    """More organisations, found from what ``whole`` pulled (the MI answers not loaded yet)."""
    staged_roots: Callable[[duckdb.DuckDBPyConnection], Iterable[str]] | None = None
    """The roots in the load's landed files, found by DuckDB once the organisations' rows are in."""
    orphan_details: tuple[str, ...] = ()
    """Also the roots with rows in these tables and no risk (the detail loader moves them to ``contracts_gone``)."""
    whole: tuple[str, ...] = ()
    """Tables read (and, if in ``writes``, replaced) whole."""
    lock: str = ""
    """A lock of the load's own kind (``reference``, ``mi``, ``marts``)."""


def adbc_uri(url: str) -> str:
    """libpq's URI for a SQLAlchemy one (``postgresql+psycopg2://`` -> ``postgresql://``)."""
    return "postgresql://" + url.split("://", 1)[1]


def describe(url: str) -> str:
    """``host:port/database`` of a URL: what a log line may show of it."""
    from urllib.parse import urlsplit

    parts = urlsplit(adbc_uri(url))
    return f"{parts.hostname or 'local socket'}:{parts.port or 5432}{parts.path}"


def connect(url: str):
    import adbc_driver_postgresql.dbapi as pg

    try:
        return pg.connect(adbc_uri(url))
    except Exception as exc:  # the driver's errors carry the host, never the password
        raise PostgresUnavailable(f"The PostgreSQL warehouse (WHITESPACE_WAREHOUSE_URL) cannot be reached: "
                                  f"{_without_secrets(str(exc), url)}") from None


def _without_secrets(text: str, url: str) -> str:
    from pipelines.config import url_password

    password = url_password(url)
    return text.replace(password, "***") if password else text


_SCHEMA_READY: set[str] = set()
_SCHEMA_LOCK = threading.Lock()


CASTS = {"double precision": "DOUBLE", "real": "FLOAT", "integer": "INTEGER", "bigint": "BIGINT",
         "smallint": "SMALLINT", "boolean": "BOOLEAN", "date": "DATE", "timestamp without time zone": "TIMESTAMP",
         "json": "VARCHAR", "jsonb": "VARCHAR", "text": "VARCHAR", "character varying": "VARCHAR"}
"""PostgreSQL's column types as DuckDB writes them for COPY (a DuckDB FLOAT is 4 bytes, PostgreSQL's 8)."""


def local_duckdb(settings: WarehouseConfig, spill: bool = True) -> duckdb.DuckDBPyConnection:
    """The in-memory DuckDB a load works in: the warehouse's memory limit, spilling beside the landing."""
    if not spill:
        return duckdb.connect(config={"memory_limit": settings.memory_limit})
    settings.path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(config={"memory_limit": settings.memory_limit,
                                  "temp_directory": str(settings.path.parent / f".{settings.path.name}.tmp")})


def _table_info(cur) -> dict[str, dict[str, str]]:
    """Each table's columns, in PostgreSQL's order, with the DuckDB type they are copied in as."""
    cur.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
    out: dict[str, dict[str, str]] = {}
    for table, column, kind in cur.fetchall():
        out.setdefault(table, {})[column] = CASTS.get(kind, "")
    return out


def _select(columns: dict[str, str]) -> str:
    return ", ".join(f"CAST({db.ident(c)} AS {kind}) AS {db.ident(c)}" if kind else db.ident(c)
                     for c, kind in columns.items())


def ensure_schema(url: str) -> None:
    """Creates the models' tables (with their comments), the keys the file warehouse only checks, and
    an index on each table's root, and adds the columns a newer model has, and the comments it gives
    (an older version's are corrected); never drops anything."""
    with _SCHEMA_LOCK:
        if url in _SCHEMA_READY:
            return
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('whitespace:schema', 0))"))
                inspector = sa.inspect(conn)
                existing = set(inspector.get_table_names())
                for table in metadata.sorted_tables:
                    if table.name not in existing:
                        table.create(conn)
                        key = table.info.get("key")
                        if key and not table.primary_key.columns:
                            conn.execute(sa.text(f"ALTER TABLE {db.ident(table.name)} ADD CONSTRAINT "
                                                 f"{db.ident(table.name + '_key')} UNIQUE "
                                                 f"({', '.join(db.ident(k) for k in key)})"))
                        _index_roots(conn, table.name, [c.name for c in table.columns])
                    else:
                        said = {c["name"]: c.get("comment") for c in inspector.get_columns(table.name)}
                        for column in table.columns:
                            if column.name not in said:
                                kind = column.type.compile(dialect=conn.dialect)
                                conn.execute(sa.text(f"ALTER TABLE {db.ident(table.name)} ADD COLUMN "
                                                     f"{db.ident(column.name)} {kind}"))
                            if said.get(column.name) != column.comment:  # an older version's words, or none
                                conn.execute(sa.schema.SetColumnComment(column) if column.comment
                                             else sa.schema.DropColumnComment(column))
                        if inspector.get_table_comment(table.name).get("text") != table.comment:
                            conn.execute(sa.schema.SetTableComment(table) if table.comment
                                         else sa.schema.DropTableComment(table))
        except sa.exc.OperationalError as exc:
            raise PostgresUnavailable(f"The PostgreSQL warehouse (WHITESPACE_WAREHOUSE_URL) cannot be reached: "
                                      f"{_without_secrets(str(exc.orig), url).strip()}") from None
        finally:
            engine.dispose()
        _SCHEMA_READY.add(url)


def _index_roots(conn, table: str, columns: list[str]) -> None:
    if table in USER_KEYED or table in APPEND_ONLY or table in UPSERTED or table in MART_TABLES:
        expression = "user_id" if table in USER_KEYED else None
    else:
        try:
            expression = root_expression(table, columns)
        except ValueError:
            expression = None
    if expression:
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {db.ident(table + '_scope')} "
                             f"ON {db.ident(table)} (({expression}))"))


def _create_child(cur, name: str, comment: str | None) -> None:
    table = sa.Table(name, sa.MetaData(), *[sa.Column(n, t, comment=c) for n, t, c in CHILD_TABLE_COLUMNS],
                     comment=comment)
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    cur.execute(str(sa.schema.CreateTable(table).compile(dialect=dialect)))
    for statement in (sa.schema.SetTableComment(table), *(sa.schema.SetColumnComment(c) for c in table.columns)):
        if getattr(statement.element, "comment", None):
            cur.execute(str(statement.compile(dialect=dialect)))
    cur.execute(f"CREATE INDEX {db.ident(name + '_scope')} ON {db.ident(name)} ((split_part(parent_id, '::', 1)))")


def _lock(cur, keys: Iterable[str]) -> None:
    """Transaction-scoped advisory locks, taken in the order of their numbers (the same order in every
    load, so no two loads wait on each other in a cycle)."""
    keys = sorted({f"whitespace:{k}" for k in keys})
    if not keys:
        return
    import pyarrow as pa  # only a PostgreSQL warehouse needs it: not imported by a DuckDB load

    cur.adbc_ingest("scope_locks", pa.table({"k": pa.array(keys, pa.string())}), mode="create", temporary=True)
    cur.execute("SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT hashtextextended(k, 0) AS h "
                "FROM scope_locks ORDER BY 1) s")
    cur.fetchall()
    cur.execute("DROP TABLE scope_locks")


def _temp_keys(cur, name: str, column: str, values: Iterable[str]) -> None:
    import pyarrow as pa

    cur.adbc_ingest(name, pa.table({column: pa.array(sorted(set(values)), pa.string())}), mode="create",
                    temporary=True)
    cur.execute(f"CREATE UNIQUE INDEX ON {name} ({column})")
    cur.execute(f"ANALYZE {name}")


class Session:
    """One load's PostgreSQL transaction and the DuckDB copy of its scope."""

    def __init__(self, settings: WarehouseConfig, scope: Scope) -> None:
        self.settings, self.scope = settings, scope
        self.local = local_duckdb(settings)
        self.pg = connect(settings.url)
        self.cur = self.pg.cursor()
        self.columns: dict[str, dict[str, str]] = {}
        self.pulled: dict[str, str] = {}  # table -> how it was scoped: "whole", "users", "roots"

    # -- reading the scope ----------------------------------------------------------------------------
    def open(self) -> None:
        scope, cur, local = self.scope, self.cur, self.local
        # A load whose process was killed while it waited for a lock gives its locks back within seconds
        # (PostgreSQL 14 and later check the client's connection while a statement waits).
        cur.execute("SELECT set_config('client_connection_check_interval', '2s', false) "
                    "WHERE current_setting('server_version_num')::int >= 140000")
        cur.fetchall()
        db.ensure_schema(local)
        self.columns = _table_info(cur)
        for name in self.columns:  # child tables found so far, with their comments
            if name.startswith(CHILD_PREFIX) and not db.existing_columns(local, name):
                cur.execute("SELECT obj_description(to_regclass($1), 'pg_class')", [name])
                comment = cur.fetchone()[0]
                db.ensure_table(local, sa.Table(name, sa.MetaData(), *[sa.Column(n, t) for n, t, _ in
                                                                        CHILD_TABLE_COLUMNS], comment=comment))
        wanted = self._tables(scope.writes + scope.reads)
        if scope.lock and scope.whole:
            # Whole tables are read from one snapshot, taken once the lock is held (a session lock, so
            # the snapshot's transaction starts after it); the load writes only tables of its own kind.
            cur.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", [f"whitespace:{scope.lock}"])
            cur.fetchall()
            self.pg.commit()
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        elif scope.lock:
            _lock(cur, [scope.lock])
        for table in scope.whole:
            self._pull(table, "whole")
        users = set(scope.users) | set(scope.users_from(local) if scope.users_from else ())
        _lock(cur, [f"user:{u}" for u in users])
        _temp_keys(cur, "scope_users", "user_id", users)
        for table in wanted:
            if table in USER_KEYED and table not in self.pulled:
                self._pull(table, "users")
        roots = set(scope.staged_roots(local) if scope.staged_roots else ())
        if users and any(t not in USER_KEYED and t not in self.pulled for t in wanted):
            cur.execute("SELECT DISTINCT split_part(risk_id, '::', 1) FROM risk_visibility "
                        "WHERE user_id IN (SELECT user_id FROM scope_users)")
            roots |= {r for (r,) in cur.fetchall()}
        if scope.orphan_details:
            union = " UNION ".join(f"SELECT root_id FROM {db.ident(t)} d WHERE NOT EXISTS "  # noqa: S608 - constants
                                   "(SELECT 1 FROM risks r WHERE r.root_id = d.root_id)" for t in scope.orphan_details)
            cur.execute(union)
            roots |= {r for (r,) in cur.fetchall()}
        roots.discard(None)
        _lock(cur, [f"root:{r}" for r in roots])
        _temp_keys(cur, "scope_roots", "root_id", roots)
        local.execute("CREATE TEMP TABLE scope_roots (root_id VARCHAR PRIMARY KEY)")
        local.execute("CREATE TEMP TABLE scope_users (user_id VARCHAR PRIMARY KEY)")
        if roots:
            local.execute("INSERT INTO scope_roots SELECT unnest(?::VARCHAR[])", [sorted(roots)])
        if users:
            local.execute("INSERT INTO scope_users SELECT unnest(?::VARCHAR[])", [sorted(users)])
        for table in wanted:
            if table not in self.pulled and table not in APPEND_ONLY and table not in UPSERTED:
                self._pull(table, "roots")
            elif table in UPSERTED and table not in self.pulled:
                self._pull(table, "whole")

    def _tables(self, names: Iterable[str]) -> list[str]:
        out: list[str] = []
        for name in names:
            if name == CHILD_PREFIX + "*":
                out += sorted(t for t in self.columns if t.startswith(CHILD_PREFIX))
            else:
                out.append(name)
        return list(dict.fromkeys(out))

    def _where(self, table: str, how: str, negate: bool = False) -> str:
        if how == "whole":
            condition = "TRUE"
        elif how == "users":
            condition = "user_id IN (SELECT user_id FROM scope_users)"
        else:
            condition = f"{root_expression(table, self.columns[table])} IN (SELECT root_id FROM scope_roots)"  # noqa: S608
        return f"({condition}) IS NOT TRUE" if negate else condition

    def _pull(self, table: str, how: str) -> None:
        self.cur.execute(f"SELECT * FROM {db.ident(table)} WHERE {self._where(table, how)}")  # noqa: S608
        _insert(self.local, table, self.cur.fetch_arrow_table())
        self.pulled[table] = how

    # -- writing it back ------------------------------------------------------------------------------
    def push(self) -> None:
        scope, cur, local = self.scope, self.cur, self.local
        writes = self._tables(scope.writes)
        writes += [t for t in db.risk_child_tables(local) if CHILD_PREFIX + "*" in scope.writes and t not in writes]
        for table in writes:
            if table not in self.columns:  # a child table this load created
                _lock(cur, ["schema"])
                # fetchall: a result left unfinished makes DuckDB 2 refuse the next ``local.sql``
                comment = local.execute("SELECT comment FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()
                _create_child(cur, table, comment[0][0] if comment else None)
                cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                            "'public' AND table_name = $1 ORDER BY ordinal_position", [table])
                self.columns[table] = {c: CASTS.get(k, "") for c, k in cur.fetchall()}
                self.pulled[table] = "roots"
            columns = self.columns[table]
            how = self.pulled.get(table, "roots")
            names = _select(columns)
            if table in APPEND_ONLY:
                rows = local.sql(f"SELECT {names} FROM {db.ident(table)}").to_arrow_table()  # noqa: S608
            elif table in UPSERTED:
                rows = local.sql(f"SELECT {names} FROM {db.ident(table)}").to_arrow_table()  # noqa: S608
                self._upsert(table, rows, UPSERTED[table], list(columns))
                continue
            else:
                if how == "whole" and table not in scope.whole:
                    how = "roots"
                cur.execute(f"DELETE FROM {db.ident(table)} WHERE {self._where(table, how)}")  # noqa: S608
                rows = local.sql(f"SELECT {names} FROM {db.ident(table)} "  # noqa: S608
                                 f"WHERE {self._where(table, how)}").to_arrow_table()
            if rows.num_rows:
                cur.adbc_ingest(table, rows, mode="append")

    def _upsert(self, table: str, rows: pa.Table, key: tuple[str, ...], columns: list[str]) -> None:
        if not rows.num_rows:
            return
        cur = self.cur
        cur.execute(f"CREATE TEMP TABLE upsert_rows (LIKE {db.ident(table)}) ON COMMIT DROP")
        cur.adbc_ingest("upsert_rows", rows, mode="append", temporary=True)
        updates = ", ".join(f"{db.ident(c)} = excluded.{db.ident(c)}" for c in columns
                            if c not in key and c != "first_seen_at")
        cur.execute(f"INSERT INTO {db.ident(table)} SELECT * FROM upsert_rows "  # noqa: S608
                    f"ON CONFLICT ({', '.join(db.ident(k) for k in key)}) DO UPDATE SET {updates}")
        cur.execute("DROP TABLE upsert_rows")

    def count(self, table: str) -> int:
        """The table's rows once this load commits (the rows outside its scope as PostgreSQL has them)."""
        local = self.local.execute(f"SELECT count(*) FROM {db.ident(table)}").fetchone()[0]  # noqa: S608
        if table not in self.columns:
            return local
        how = self.pulled.get(table)
        if table in APPEND_ONLY or how is None:
            self.cur.execute(f"SELECT count(*) FROM {db.ident(table)}")  # noqa: S608
            return local + self.cur.fetchone()[0]
        if how == "whole":
            return local
        inside = self.local.execute(f"SELECT count(*) FROM {db.ident(table)} "  # noqa: S608
                                    f"WHERE {self._where(table, how)}").fetchone()[0]
        self.cur.execute(f"SELECT count(*) FROM {db.ident(table)} WHERE {self._where(table, how, True)}")  # noqa: S608
        return inside + self.cur.fetchone()[0]

    def close(self) -> None:
        for thing in (self.cur, self.pg, self.local):
            with contextlib.suppress(Exception):
                thing.close()


def _insert(local: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """Rows read from PostgreSQL into DuckDB's table of the same name (DuckDB casts each column to its type)."""
    if not rows.num_rows:
        return
    local.register("pulled", rows)
    try:
        columns = ", ".join(db.ident(c) for c in rows.column_names)
        local.execute(f"INSERT INTO {db.ident(table)} ({columns}) SELECT {columns} FROM pulled")  # noqa: S608
    finally:
        local.unregister("pulled")


_OPEN: dict[int, Session] = {}


@contextlib.contextmanager
def session(settings: WarehouseConfig, scope: Scope) -> Iterator[duckdb.DuckDBPyConnection]:
    """The DuckDB copy of ``scope``; what the body leaves in it replaces the scope in PostgreSQL, in
    one transaction, when the body ends without an error (with one, PostgreSQL is left as it was)."""
    ensure_schema(settings.url)
    one = Session(settings, scope)
    _OPEN[id(one.local)] = one
    try:
        one.open()
        yield one.local
        one.push()
        one.pg.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            one.pg.rollback()
        raise
    finally:
        _OPEN.pop(id(one.local), None)
        one.close()


def row_count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    """The rows of ``table``: in the file, or (inside a PostgreSQL load) as they will be once it commits."""
    one = _OPEN.get(id(conn))
    if one is not None:
        return one.count(table)
    return conn.execute(f"SELECT count(*) FROM {db.ident(table)}").fetchone()[0]  # noqa: S608


def read_copy(settings: WarehouseConfig, tables: Iterable[str]) -> duckdb.DuckDBPyConnection:
    """A DuckDB copy of whole ``tables`` as PostgreSQL has them now (small bookkeeping tables), all from
    one snapshot: a load committing meanwhile is in all of them or in none."""
    ensure_schema(settings.url)
    local = local_duckdb(settings, spill=False)
    db.ensure_schema(local)
    with contextlib.closing(connect(settings.url)) as pg, contextlib.closing(pg.cursor()) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for table in tables:
            cur.execute(f"SELECT * FROM {db.ident(table)}")  # noqa: S608
            _insert(local, table, cur.fetch_arrow_table())
        pg.rollback()
    return local


def counts(settings: WarehouseConfig, tables: Iterable[str]) -> dict[str, int]:
    ensure_schema(settings.url)
    with contextlib.closing(connect(settings.url)) as pg, contextlib.closing(pg.cursor()) as cur:
        out = {}
        for table in tables:
            cur.execute(f"SELECT count(*) FROM {db.ident(table)}")  # noqa: S608
            out[table] = cur.fetchone()[0]
        pg.rollback()
    return out


def query(settings: WarehouseConfig, sql: str, params: list | None = None) -> list[tuple]:
    ensure_schema(settings.url)
    with contextlib.closing(connect(settings.url)) as pg, contextlib.closing(pg.cursor()) as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
        pg.rollback()
    return rows
