"""Load landed MI report answers into ``mi_report`` and ``mi_report_carriers``.

Every landed answer not loaded yet is applied in one transaction. Per organisation and placement the
newest answer wins (by landing time, then position in the answer); a row older than the one stored
(a rebuild loading an old file last) is not applied. Rows are never deleted here: a placement can
reach the MI report before the organisation's risk list shows it, and the report will not send it
again. The marts count only placements the organisation currently sees."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb

from pipelines.client import documents, endpoints
from pipelines.client.documents import SetAside
from pipelines.landing.raw import MI_FOLDER, read_objects
from pipelines.warehouse import db, quarantine
from pipelines.warehouse.postgres import Scope

MI_TABLES = ("mi_report", "mi_report_carriers")
assert MI_FOLDER == "mireport", "STAGE reads the organisation from the landing path"

STAGE = (
    # Every row of every pending file, read once, with its place in its file (from 1).
    """CREATE OR REPLACE TEMP TABLE stage_mi_all AS
       SELECT filename, ord, ord - min(ord) OVER (PARTITION BY filename) + 1 AS position, json
       FROM read_json_objects(?, format = 'array', filename = true{options}) WITH ORDINALITY AS e(json, filename, ord)""",
    # Per organisation and placement, the row landed last.
    """CREATE OR REPLACE TEMP TABLE stage_mi AS
       SELECT regexp_extract(filename, '([^/]+)/mireport/[^/]+$', 1) AS user_id,
              json->>'rootID' AS root_id, json AS j,
              CAST(strptime(regexp_extract(filename, '([0-9]{8}T[0-9]{12})Z\\.json$', 1), '%Y%m%dT%H%M%S%f')
                   AS TIMESTAMP) AS landed_at
       FROM stage_mi_all
       QUALIFY row_number() OVER (PARTITION BY user_id, root_id ORDER BY filename DESC, ord DESC) = 1""",
)

PER_FILE = "SELECT filename, count(*) FROM stage_mi_all GROUP BY ALL ORDER BY filename"
"""Per landed file: its rows."""

MAY_SET_ASIDE = """
SELECT filename, ord, position, json, json->>'rootID',
       CASE WHEN json_type(json) <> 'OBJECT' THEN 'not a JSON object'
            WHEN length(json) > $max_bytes THEN 'larger than ' || format('{:,}', $max_bytes) || ' characters'
            WHEN coalesce(json->>'rootID', '') = '' THEN 'no rootID: it cannot be tied to a placement'
            WHEN NOT regexp_full_match(json->>'rootID', $root_id) THEN 'rootID outside the platform''s id grammar'
            ELSE 'deep or NUL' END
FROM stage_mi_all
WHERE json_type(json) <> 'OBJECT' OR length(json) > $max_bytes OR coalesce(json->>'rootID', '') = ''
   OR NOT regexp_full_match(json->>'rootID', $root_id)
   OR length(json) - length(replace(replace(json, '[', ''), '{', '')) > $max_depth
   OR strpos(json, '\\u0000') > 0
"""
"""Rows to set aside, and the ones with more brackets than the depth limit or a NUL's escape (``deep or
NUL``: their depth is then counted exactly in Python, strings skipped, and the escape read as JSON)."""


OLDER_THAN_STORED = """
DELETE FROM stage_mi s WHERE EXISTS (
  SELECT 1 FROM mi_report m WHERE m.user_id = s.user_id AND m.root_id = s.root_id
    AND (coalesce(m.risk_updated_at, TIMESTAMP '0001-01-01'), m.landed_at)
      > (coalesce(ws_ts(s.j->>'riskUpdatedAt'), TIMESTAMP '0001-01-01'), s.landed_at))
"""

INSERTS = {
    "mi_report": """
        INSERT INTO mi_report BY NAME
        SELECT user_id, root_id, j->>'_id' AS mi_id, trim(j->>'umr') AS umr, trim(j->>'insured') AS insured,
               j->>'status' AS status, j->>'contractType' AS contract_type,
               j->>'brokerCompanyID' AS broker_company_id, j->>'brokerCompanyName' AS broker_company,
               j->>'brokerTeamID' AS broker_team_id, j->>'brokerTeam' AS broker_team,
               ws_date(j->>'periodFrom') AS period_from, ws_date(j->>'periodTo') AS period_to,
               ws_currency(j->>'limit') AS limit_currency, ws_amount(j->>'limit') AS limit_amount,
               j->>'limit' AS limit_raw,
               coalesce(nullif(upper(trim(j->>'premiumCCY')), ''), ws_currency(j->>'premiumAll')) AS premium_currency,
               ws_amount_in(j->>'premium', coalesce(nullif(upper(trim(j->>'premiumCCY')), ''), ws_currency(j->>'premiumAll'))) AS premium_amount, j->>'premium' AS premium_raw,
               j->>'premiumAll' AS premium_all_raw,
               ws_pct(j->>'brokerage') AS brokerage_pct, j->>'brokerage' AS brokerage_raw,
               ws_ts(j->>'riskCreatedAt') AS risk_created_at, ws_ts(j->>'riskUpdatedAt') AS risk_updated_at,
               TRY_CAST(j->>'dataVersion' AS INTEGER) AS data_version, j AS raw, landed_at
        FROM stage_mi""",
    "mi_report_carriers": """
        INSERT INTO mi_report_carriers BY NAME
        SELECT user_id, root_id, carrier_position, content_position, impression_position,
               u->>'carrierCompanyID' AS carrier_company_id, u->>'carrierName' AS carrier,
               u->>'carrierTeamID' AS carrier_team_id, u->>'carrierTeamName' AS carrier_team,
               u->>'underwriterName' AS underwriter, u->>'riskID' AS risk_id,
               ws_bool(u->>'isOffPlatform') AS is_off_platform, ws_bool(c->>'leadUWFlag') AS is_lead,
               ws_pct(i->>'writtenLinePerc') AS written_pct, ws_pct(i->>'signedLinePerc') AS signed_pct,
               i->>'writtenLinePerc' AS written_raw, i->>'signedLinePerc' AS signed_raw, i->>'stamp' AS stamp,
               coalesce(nullif(regexp_extract(i->>'stamp', '^(.*),([^,]*),([^,]*)$', 1), ''), i->>'stamp') AS stamp_name,
               nullif(regexp_extract(i->>'stamp', '^(.*),([^,]*),([^,]*)$', 2), '') AS market,
               nullif(regexp_extract(i->>'stamp', '^(.*),([^,]*),([^,]*)$', 3), '') AS syndicate,
               i->>'ref' AS reference, ws_ts(c->>'writtenLineStampedAt') AS written_line_stamped_at,
               ws_ts(u->>'quotationRequest') AS quotation_request_at, ws_ts(u->>'quotedByUnderwriter') AS quoted_at,
               ws_ts(u->>'firmOrder') AS firm_order_at, ws_ts(u->>'signed') AS signed_at
        FROM (
          WITH d AS (
            SELECT user_id, root_id, unnest(ds) AS u, unnest(range(len(ds))) AS carrier_position
            FROM (SELECT user_id, root_id, coalesce(TRY_CAST(j->'underwriterDetails' AS JSON[]), []) AS ds
                  FROM stage_mi)),
          dc AS (
            SELECT user_id, root_id, u, carrier_position,
                   unnest(CASE WHEN len(cs) = 0 THEN [NULL::JSON] ELSE cs END) AS c,
                   unnest(CASE WHEN len(cs) = 0 THEN [NULL::BIGINT] ELSE range(len(cs)) END) AS content_position
            FROM (SELECT *, coalesce(TRY_CAST(u->'content' AS JSON[]), []) AS cs FROM d))
          SELECT user_id, root_id, u, carrier_position, c, content_position,
                 unnest(CASE WHEN len(imps) = 0 THEN [NULL::JSON] ELSE imps END) AS i,
                 unnest(CASE WHEN len(imps) = 0 THEN [NULL::BIGINT] ELSE range(len(imps)) END) AS impression_position
          FROM (SELECT *, coalesce(TRY_CAST(c->'impressions' AS JSON[]), []) AS imps FROM dc))""",
}

@dataclasses.dataclass
class MiLoad:
    files: int
    rows: int
    older: int
    counts: dict[str, int]
    set_aside: list = dataclasses.field(default_factory=list)
    """Rows set aside (``quarantine``), not loaded."""
    arrived_twice: int = 0
    """Placements whose row came more than once in one answer (the last one is loaded)."""


def pending(conn: duckdb.DuckDBPyConnection, raw_dir: Path) -> list[Path]:
    """Landed MI answers not in the warehouse yet, oldest first."""
    files = sorted(Path(raw_dir).glob(f"*/{MI_FOLDER}/*.json"), key=lambda p: (p.name, str(p)))
    loaded = {r[0] for r in conn.execute("SELECT path FROM mi_report_loads").fetchall()}
    return [f for f in files if f.relative_to(raw_dir).as_posix() not in loaded]


def scope(raw_dir: Path) -> Scope:
    """A PostgreSQL load of the MI answers not loaded yet: the rows of their organisations, with the risks
    those see (the checks compare the two)."""
    def users(conn: duckdb.DuckDBPyConnection) -> set[str]:
        return {f.relative_to(raw_dir).parts[0] for f in pending(conn, raw_dir)}

    return Scope(writes=(*MI_TABLES, "mi_report_loads", "quarantine"), reads=("risk_visibility", "risks", "sync_state"),
                 whole=("mi_report_loads",), users_from=users, lock="mi")


def load_pending(conn: duckdb.DuckDBPyConnection, raw_dir: Path, now: dt.datetime | None = None) -> MiLoad:
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    files = pending(conn, raw_dir)
    rows = older = arrived_twice = 0
    set_aside: list[SetAside] = []
    if files:  # read before the transaction: a read retried with a larger limit must not abort it
        read_objects(conn, STAGE[0], [[str(f) for f in files]], files)
    with db.transaction(conn):
        if files:
            per_file = dict(conn.execute(PER_FILE).fetchall())
            set_aside = _set_aside(conn, raw_dir, now)
            arrived_twice = conn.execute("SELECT count(*) FROM (SELECT filename, json->>'rootID' FROM stage_mi_all "
                                         "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
            conn.execute(STAGE[1])
            older = conn.execute(OLDER_THAN_STORED).fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM stage_mi").fetchone()[0]
            for table in MI_TABLES:
                conn.execute(f"DELETE FROM {db.ident(table)} WHERE (user_id, root_id) IN "  # noqa: S608
                             "(SELECT user_id, root_id FROM stage_mi)")
            for sql in INSERTS.values():
                conn.execute(sql)
            for f in files:
                conn.execute("INSERT INTO mi_report_loads (path, user_id, loaded_at, rows) VALUES (?, ?, ?, ?)",
                             [f.relative_to(raw_dir).as_posix(), f.parent.parent.name, now, per_file.get(str(f), 0)])
            conn.execute("DROP TABLE stage_mi")
            conn.execute("DROP TABLE stage_mi_all")
    counts = {t: db.row_count(conn, t) for t in MI_TABLES}
    return MiLoad(len(files), rows, older, counts, set_aside, arrived_twice)


def _set_aside(conn: duckdb.DuckDBPyConnection, raw_dir: Path, now: dt.datetime) -> list[SetAside]:
    """Takes the rows no placement can be loaded from out of ``stage_mi_all`` and records them in
    ``quarantine``: not an object, no ``rootID`` or one outside the grammar, too deep, too large."""
    found = conn.execute(MAY_SET_ASIDE, {"max_bytes": documents.MAX_BYTES, "max_depth": documents.MAX_DEPTH,
                                         "root_id": documents.ROOT_ID.pattern}).fetchall()
    aside: dict[str, list[tuple[int, SetAside]]] = {}
    for filename, ord_, position, text, root_id, reason in found:
        if reason == "deep or NUL":
            if documents.too_deep(text):
                reason = f"nested deeper than {documents.MAX_DEPTH} levels"
            elif documents.text_has_nul(text):
                reason = documents.NUL_REASON
            else:
                continue
        aside.setdefault(filename, []).append((ord_, SetAside.of(position, reason, text, root_id)))
    for filename, rows in aside.items():
        path = Path(filename)
        quarantine.record(conn, path.parent.parent.name, endpoints.MI_REPORT, path.relative_to(raw_dir).as_posix(),
                          [a for _, a in rows], now, whole=False)
    taken = [o for rows in aside.values() for o, _ in rows]
    if taken:
        conn.execute("DELETE FROM stage_mi_all WHERE list_contains(?, ord)", [taken])
    return [a for rows in aside.values() for _, a in rows]

