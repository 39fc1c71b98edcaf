"""Reference data from ``/api/shared/corporate``: organisations, teams, users and their teams."""

from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.client import WhitespaceError, documents, endpoints
from pipelines.client.documents import SetAside
from pipelines.landing.raw import Landed
from pipelines.warehouse import db, quarantine
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
        WHERE regexp_full_match(coalesce(m->>'uniqueID', ''), $mu_id)
        QUALIFY row_number() OVER (PARTITION BY m->>'uniqueID' ORDER BY ord DESC) = 1""",
    "users__teams": """
        INSERT INTO users__teams (user_id, position, channel)
        SELECT user_id, pos - 1, channel FROM (
          SELECT user_id, unnest(channels) AS channel, unnest(range(1, len(channels) + 1)) AS pos FROM (
            SELECT m->>'uniqueID' AS user_id, coalesce(TRY_CAST(m->'teams' AS VARCHAR[]), []) AS channels
            FROM (SELECT ord, unnest(coalesce(TRY_CAST(raw->'members' AS JSON[]), [])) AS m FROM stage_corporate)
            WHERE regexp_full_match(coalesce(m->>'uniqueID', ''), $mu_id)
            QUALIFY row_number() OVER (PARTITION BY m->>'uniqueID' ORDER BY ord DESC) = 1))""",
}


SET_ASIDE = """
SELECT ord, raw, NULL, 'not a JSON object (a company)' FROM stage_corporate WHERE json_type(raw) <> 'OBJECT'
UNION ALL
SELECT ord, raw, NULL, 'company without companyId' FROM stage_corporate
WHERE json_type(raw) = 'OBJECT' AND coalesce(raw->>'companyId', '') = ''
UNION ALL
SELECT ord, t, t->>'teamId', 'team without channel (company ' || coalesce(company_id, '?') || ')' FROM (
  SELECT ord, raw->>'companyId' AS company_id, unnest(coalesce(TRY_CAST(raw->'teams' AS JSON[]), [])) AS t
  FROM stage_corporate WHERE json_type(raw) = 'OBJECT')
WHERE coalesce(t->>'channel', '') = ''
UNION ALL
SELECT ord, m, m->>'uniqueID', CASE WHEN coalesce(m->>'uniqueID', '') = '' THEN 'member without uniqueID'
                                    ELSE 'member whose uniqueID is outside the platform''s id grammar' END
                                 || ' (company ' || coalesce(company_id, '?') || ')' FROM (
  SELECT ord, raw->>'companyId' AS company_id, unnest(coalesce(TRY_CAST(raw->'members' AS JSON[]), [])) AS m
  FROM stage_corporate WHERE json_type(raw) = 'OBJECT')
WHERE NOT regexp_full_match(coalesce(m->>'uniqueID', ''), $mu_id)
ORDER BY ALL
"""
"""Companies, teams and members the reference tables cannot key: each is set aside (``quarantine``) and
counted, never dropped without a word. A member keeps a folder of the landing only with an MU id in the
platform's grammar."""


class SuspiciousCorporateAnswer(WhitespaceError):
    """A corporate list that would drop more of the known companies than allowed: it is not applied."""

    def __init__(self, before: int, after: int, items: int, allowed: float) -> None:
        super().__init__(
            f"The corporate list (/shared/corporate) came back with {after:,} compan{'y' if after == 1 else 'ies'} "
            f"({items:,} elements) where the warehouse holds {before:,}: more than WHITESPACE_MAX_SHRINK allows "
            f"({allowed:.0%}) would go, so organisations, teams and users were left as they were. If the platform "
            "really dropped them, sync again: the same answer twice in a row is accepted.")
        self.before, self.after = before, after


SCOPE = Scope(writes=(*STATEMENTS, "raw_responses", "quarantine"), whole=tuple(STATEMENTS), users=("",),
              lock="reference")
"""A PostgreSQL load replaces the reference tables whole, and the corporate list's own row of raw_responses."""


def load_corporate(conn: duckdb.DuckDBPyConnection, landed: Landed, raw_rel_path: str, max_shrink: float = 1.0,
                   now: dt.datetime | None = None) -> dict[str, int]:
    """Replaces the reference tables with the landed corporate list, in one transaction. Companies, teams
    and members without their key are set aside (``quarantine``). An answer that would drop more than
    ``max_shrink`` of the companies the warehouse holds (an empty one included) raises
    ``SuspiciousCorporateAnswer`` and changes nothing."""
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    conn.execute(  # without the companies set aside as the answer was landed (too large, too deep, NUL)
        "CREATE OR REPLACE TEMP TABLE stage_corporate AS SELECT json AS raw, ord "  # noqa: S608 - a number
        f"FROM read_json_objects(?, format = 'array'{landed.read_option}) WITH ORDINALITY AS e(json, ord) "
        "WHERE NOT list_contains(?::BIGINT[], ord)",
        [str(landed.path), [a.position for a in landed.set_aside]],
    )
    before = conn.execute("SELECT count(*) FROM organisations").fetchone()[0]
    after = conn.execute("SELECT count(DISTINCT raw->>'companyId') FILTER (WHERE raw->>'companyId' <> '') "
                         "FROM stage_corporate WHERE json_type(raw) = 'OBJECT'").fetchone()[0]
    if before and after < before * (1 - max_shrink):
        conn.execute("DROP TABLE IF EXISTS stage_corporate")
        raise SuspiciousCorporateAnswer(before, after, landed.items, max_shrink)
    aside = [*landed.set_aside, *(SetAside.of(ord_, why, text, key) for ord_, text, key, why in
                                  conn.execute(SET_ASIDE, {"mu_id": documents.MU_ID.pattern}).fetchall())]
    counts: dict[str, int] = dict(zip(("organisations_arrived_twice", "users_arrived_twice"), conn.execute(
        """SELECT (SELECT count(*) FROM (SELECT raw->>'companyId' FROM stage_corporate WHERE raw->>'companyId' <> ''
                                         GROUP BY ALL HAVING count(*) > 1)),
                  (SELECT count(*) FROM (SELECT m->>'uniqueID' FROM (
                     SELECT unnest(coalesce(TRY_CAST(raw->'members' AS JSON[]), [])) AS m FROM stage_corporate)
                   WHERE m->>'uniqueID' <> '' GROUP BY ALL HAVING count(*) > 1))""").fetchone(), strict=True))
    fetched = landed.fetched_at.astimezone(dt.UTC).replace(tzinfo=None)
    with db.transaction(conn):
        counts["set_aside"] = quarantine.record(conn, "", endpoints.CORPORATE, raw_rel_path, aside, now, whole=True)
        for table, insert in STATEMENTS.items():
            conn.execute(f"DELETE FROM {db.ident(table)}")  # noqa: S608 - a fixed table name
            conn.execute(insert, {"mu_id": documents.MU_ID.pattern} if "$mu_id" in insert else None)
            counts[table] = conn.execute(f"SELECT count(*) FROM {db.ident(table)}").fetchone()[0]  # noqa: S608
        conn.execute(
            f"INSERT OR REPLACE INTO raw_responses ({RAW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            ["", endpoints.CORPORATE, fetched, landed.sha256, landed.bytes, landed.items, raw_rel_path],
        )
    conn.execute("DROP TABLE IF EXISTS stage_corporate")
    return counts
