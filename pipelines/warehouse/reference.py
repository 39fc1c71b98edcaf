"""Reference data from ``/api/shared/corporate``: organisations, teams, users and their teams."""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.client import endpoints
from pipelines.landing.raw import Landed
from pipelines.warehouse import db
from pipelines.warehouse.postgres import Scope
from pipelines.warehouse.risks import RAW_COLUMNS

STATEMENTS = {
    "organisations": """
        INSERT INTO organisations (company_id, name, role, is_offline, is_test_only, created_at, updated_at, raw)
        SELECT raw->>'companyId', raw->>'name', raw->>'role', ws_bool(raw->>'isOffline'),
               ws_bool(raw->>'isTestOnly'), ws_ts(raw->>'createdAt'), ws_ts(raw->>'updatedAt'), raw
        FROM stage_corporate WHERE coalesce(raw->>'companyId', '') <> ''
        QUALIFY row_number() OVER (PARTITION BY raw->>'companyId' ORDER BY ord DESC) = 1""",
    "teams": """
        INSERT INTO teams (channel, company_id, team_id, name, is_inactive)
        SELECT t->>'channel', company_id, t->>'teamId', t->>'name', ws_bool(t->>'isInactive')
        FROM (SELECT raw->>'companyId' AS company_id, ord,
                     unnest(coalesce(TRY_CAST(raw->'teams' AS JSON[]), [])) AS t FROM stage_corporate)
        WHERE coalesce(t->>'channel', '') <> ''
        QUALIFY row_number() OVER (PARTITION BY t->>'channel' ORDER BY ord DESC) = 1""",
    "users": """
        INSERT INTO users (user_id, name, company_id, current_state)
        SELECT m->>'uniqueID', m->>'name', company_id, m->>'currentState'
        FROM (SELECT raw->>'companyId' AS company_id, ord,
                     unnest(coalesce(TRY_CAST(raw->'members' AS JSON[]), [])) AS m FROM stage_corporate)
        WHERE coalesce(m->>'uniqueID', '') <> ''
        QUALIFY row_number() OVER (PARTITION BY m->>'uniqueID' ORDER BY ord DESC) = 1""",
    "users__teams": """
        INSERT INTO users__teams (user_id, position, channel)
        SELECT user_id, pos - 1, channel FROM (
          SELECT user_id, unnest(channels) AS channel, unnest(range(1, len(channels) + 1)) AS pos FROM (
            SELECT m->>'uniqueID' AS user_id, coalesce(TRY_CAST(m->'teams' AS VARCHAR[]), []) AS channels
            FROM (SELECT ord, unnest(coalesce(TRY_CAST(raw->'members' AS JSON[]), [])) AS m FROM stage_corporate)
            WHERE coalesce(m->>'uniqueID', '') <> ''
            QUALIFY row_number() OVER (PARTITION BY m->>'uniqueID' ORDER BY ord DESC) = 1))""",
}


SCOPE = Scope(writes=(*STATEMENTS, "raw_responses"), whole=tuple(STATEMENTS), users=("",), lock="reference")
"""A PostgreSQL load replaces the reference tables whole, and the corporate list's own row of raw_responses."""


def load_corporate(conn: duckdb.DuckDBPyConnection, landed: Landed, raw_rel_path: str) -> dict[str, int]:
    """Replaces the reference tables with the landed corporate list, in one transaction."""
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE stage_corporate AS "
        "SELECT json AS raw, row_number() OVER () AS ord FROM read_json_objects(?, format = 'array')",
        [str(landed.path)],
    )
    counts: dict[str, int] = {}
    fetched = landed.fetched_at.astimezone(dt.UTC).replace(tzinfo=None)
    with db.transaction(conn):
        for table, insert in STATEMENTS.items():
            conn.execute(f"DELETE FROM {db.ident(table)}")  # noqa: S608 - a fixed table name
            conn.execute(insert)
            counts[table] = conn.execute(f"SELECT count(*) FROM {db.ident(table)}").fetchone()[0]  # noqa: S608
        conn.execute(
            f"INSERT OR REPLACE INTO raw_responses ({RAW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            ["", endpoints.CORPORATE, fetched, landed.sha256, landed.bytes, landed.items, raw_rel_path],
        )
    conn.execute("DROP TABLE IF EXISTS stage_corporate")
    return counts
