"""Load landed contracts and line sets into contracts, line items, placeholders, market lines and
facility links. All landed files not yet loaded are applied in one transaction, oldest first."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb

from models.tables import contracts as contracts_table
from pipelines.client import endpoints
from pipelines.landing.raw import details_dir, read_objects
from pipelines.warehouse import db
from pipelines.warehouse.postgres import Scope

DETAIL_TABLES = ("contracts", "contract_line_items", "contract_line_items__placeholders", "market_lines",
                 "facility_links", "defined_data")

STAGE = """
CREATE OR REPLACE TEMP TABLE stage_details AS
SELECT root_id, risk_id, error, TRY_CAST(contract AS JSON) AS c, TRY_CAST(lines AS JSON) AS l,
       TRY_CAST(defined_data AS JSON) AS d, ws_ts(fetched_at) AS fetched_at
FROM (SELECT *, row_number() OVER () AS ord
      FROM read_json(?, format = 'newline_delimited', filename = true, columns = {{
             root_id: 'VARCHAR', risk_id: 'VARCHAR', contract: 'VARCHAR', lines: 'VARCHAR', error: 'VARCHAR',
             gone: 'BOOLEAN', fetched_at: 'VARCHAR', defined_data: 'VARCHAR'}}{options}))
WHERE NOT coalesce(gone, FALSE)
QUALIFY row_number() OVER (PARTITION BY root_id ORDER BY filename DESC, ord DESC) = 1
"""

OLDER_THAN_STORED = """
DELETE FROM stage_details s WHERE EXISTS (
  SELECT 1 FROM contracts c WHERE c.root_id = s.root_id
    AND (ws_instance_rank(c.risk_id), coalesce(TRY_CAST(split_part(c.rev, '-', 1) AS INTEGER), -1),
         coalesce(c.updated_at, TIMESTAMP '0001-01-01'), coalesce(c.fetched_at, TIMESTAMP '0001-01-01'))
      > (ws_instance_rank(s.risk_id), coalesce(TRY_CAST(split_part(s.c->>'_rev', '-', 1) AS INTEGER), -1),
         coalesce(ws_ts(s.c->>'updatedAt'), TIMESTAMP '0001-01-01'), coalesce(s.fetched_at, TIMESTAMP '0001-01-01')))
"""
"""Newest wins: a root whose stored contract is a more advanced instance, a later revision, or the
same one fetched later (its line sets then newer too) than the one staged (an organisation whose
view lags, or a rebuild loading an older file last) keeps what is stored."""

EXPECTED = {
    # endpoint: (the part of each document checked, the keys the published spec gives it, the keys the
    # loader reads that every document must have)
    endpoints.RISK: ("control", frozenset({
        "associatedFacilityIDs", "contractType", "createdInVersion", "endorsementNumber", "endorsementType",
        "insuranceType", "insuredName", "isFacility", "isIndicative", "leadUnderwriter", "leadUnderwriterChannel",
        "limitSummary", "originalDocID", "placementType", "placingBroker", "placingBrokerChannel", "shownToUnderwriter",
        "stampVisibility", "status", "submittedAsCopyOf", "umr", "verticalVisibility"}),
        frozenset({"status", "umr", "contractType", "insuranceType", "placingBrokerChannel"})),
    endpoints.COMBINED_SETS: ("impressions", frozenset({
        "brexitData", "descriptions", "mirrorStamps", "riskCodes", "signedLinePercentageString", "stamp",
        "stampIdentifiers", "tiltAngleString", "uwRefs", "writtenLinePercentageString", "yearOfAccount"}),
        frozenset({"writtenLinePercentageString"})),
}
DRIFT_KEYS = {
    "control": "SELECT unnest(json_keys(c->'control')) AS k, root_id FROM stage_details WHERE c IS NOT NULL",
    "impressions": """SELECT unnest(json_keys(imp)) AS k, root_id FROM (
        SELECT root_id, unnest(coalesce(TRY_CAST(line->'impressions' AS JSON[]), [])) AS imp FROM (
          SELECT root_id, unnest(coalesce(TRY_CAST(s->'contents' AS JSON[]), [])) AS line FROM (
            SELECT root_id, unnest(coalesce(TRY_CAST(l AS JSON[]), [])) AS s FROM stage_details WHERE l IS NOT NULL)))""",
}


def detail_drift(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    """Fields of the staged contracts (``control``) and line impressions that the loader does not know,
    and fields it reads that some documents lack: a renamed field is reported, never a silent NULL."""
    out = []
    for endpoint, (part, known, required) in EXPECTED.items():
        rows = conn.execute(f"SELECT k, count(DISTINCT root_id) FROM ({DRIFT_KEYS[part]}) GROUP BY k").fetchall()  # noqa: S608
        seen = dict(rows)
        out += [{"endpoint": endpoint, "field": f"{part}.{k}", "kind": "new_field", "roots": n}
                for k, n in sorted(seen.items()) if k not in known]
        if part == "control":
            docs = conn.execute("SELECT count(*) FROM stage_details WHERE c IS NOT NULL").fetchone()[0]
        else:
            docs = conn.execute(f"SELECT count(DISTINCT root_id) FROM ({DRIFT_KEYS[part]})").fetchone()[0]  # noqa: S608
        out += [{"endpoint": endpoint, "field": f"{part}.{k}", "kind": "missing_field", "roots": docs - seen.get(k, 0)}
                for k in sorted(required) if docs and seen.get(k, 0) < docs]
    return out


def _record_drift(conn: duckdb.DuckDBPyConnection, drift: list[dict], now: dt.datetime) -> None:
    for item in drift:
        conn.execute(
            """INSERT INTO schema_drift (endpoint, field, kind, json_types, first_seen_at, last_seen_at, child_table)
               VALUES (?, ?, ?, ?, ?, ?, NULL)
               ON CONFLICT DO UPDATE SET last_seen_at = excluded.last_seen_at""",
            [item["endpoint"], item["field"], item["kind"], f"{item['roots']} roots", now, now])


INSERTS = {
    "contracts": """
        INSERT INTO contracts (root_id, risk_id, rev, status, insurance_type, contract_type, umr, insured_name,
            placing_broker_channel, lead_underwriter_channel, lead_underwriter, limit_summary, placement_type,
            is_facility, is_declaration, inception_date, expiry_date, created_at, updated_at, raw, fetched_at)
        SELECT root_id, risk_id, c->>'_rev', c->>'$.control.status', c->>'$.control.insuranceType',
               c->>'$.control.contractType', trim(c->>'$.control.umr'), trim(c->>'$.control.insuredName'),
               c->>'$.control.placingBrokerChannel', nullif(c->>'$.control.leadUnderwriterChannel', ''),
               c->>'$.control.leadUnderwriter', c->>'$.control.limitSummary', c->>'$.control.placementType',
               ws_bool(c->>'$.control.isFacility'),
               coalesce(json_array_length(c, '$.control.associatedFacilityIDs'), 0) > 0,
               ws_date(ws_placeholder(c, 'Inception_Date')), ws_date(ws_placeholder(c, 'Expiry_Date')),
               ws_ts(c->>'createdAt'), ws_ts(c->>'updatedAt'), c, fetched_at
        FROM stage_details WHERE c IS NOT NULL""",
    "contract_line_items": """
        INSERT INTO contract_line_items (root_id, position, section, heading, original_heading, text)
        SELECT root_id, pos - 1, li->>'mrcSection', li->>'mrcHeading', trim(li->>'originalHeading'),
               array_to_string(json_extract_string(li, '$.elements[*].text'), chr(10))
        FROM (SELECT root_id, unnest(items) AS li, unnest(range(1, len(items) + 1)) AS pos
              FROM (SELECT root_id, coalesce(TRY_CAST(c->'$.MRCContract.lineItems' AS JSON[]), []) AS items
                    FROM stage_details WHERE c IS NOT NULL))""",
    "contract_line_items__placeholders": """
        INSERT INTO contract_line_items__placeholders (root_id, item_position, position, name, type, tags, value)
        SELECT root_id, item_pos, pos - 1, ph->>'name', ph->>'phType',
               array_to_string(list_filter(coalesce(TRY_CAST(ph->'tags' AS VARCHAR[]), []),
                                           lambda t: NOT starts_with(t, 'Page:')), ','),
               ph->>'value'
        FROM (SELECT root_id, item_pos, unnest(phs) AS ph, unnest(range(1, len(phs) + 1)) AS pos FROM (
                SELECT root_id, pos - 1 AS item_pos, coalesce(TRY_CAST(li->'placeholders' AS JSON[]), []) AS phs
                FROM (SELECT root_id, unnest(items) AS li, unnest(range(1, len(items) + 1)) AS pos
                      FROM (SELECT root_id, coalesce(TRY_CAST(c->'$.MRCContract.lineItems' AS JSON[]), []) AS items
                            FROM stage_details WHERE c IS NOT NULL))))""",
    "market_lines": """
        INSERT INTO market_lines (line_set_id, line_position, impression_position, root_id, set_type,
            carrier_channel, carrier_company_id, role, is_leader, market, syndicate_number, pseudonym,
            written_pct, signed_pct, written_raw, signed_raw, risk_codes, year_of_account, stamped_at)
        SELECT set_id, line_pos - 1, imp_pos - 1, root_id,
               CASE WHEN set_type ILIKE '%signed%' THEN 'signed' ELSE 'written' END,
               line->>'stamperChannel', upper(split_part(line->>'stamperChannel', '_', 1)), line->>'role',
               line->>'role' = 'leader', imp->>'$.stamp.bureauMarket',
               coalesce(imp->>'$.stampIdentifiers[0].categoryNumber', imp->>'$.stamp.bureauMarketCode'),
               nullif(imp->>'$.stampIdentifiers[0].categoryExtra', ''),
               ws_pct(imp->>'writtenLinePercentageString'), ws_pct(imp->>'signedLinePercentageString'),
               imp->>'writtenLinePercentageString', imp->>'signedLinePercentageString',
               array_to_string(json_extract_string(imp, '$.riskCodes[*].code'), ','),
               TRY_CAST(imp->>'yearOfAccount' AS INTEGER), ws_ts(line->>'stampedAt')
        FROM (SELECT root_id, set_id, set_type, line, line_pos, unnest(imps) AS imp,
                     unnest(range(1, len(imps) + 1)) AS imp_pos FROM (
                SELECT root_id, set_id, set_type, line, line_pos,
                       coalesce(TRY_CAST(line->'impressions' AS JSON[]), []) AS imps FROM (
                  SELECT root_id, s->>'_id' AS set_id, s->>'type' AS set_type, unnest(ls) AS line,
                         unnest(range(1, len(ls) + 1)) AS line_pos FROM (
                    SELECT root_id, s, coalesce(TRY_CAST(s->'contents' AS JSON[]), TRY_CAST(s->'line' AS JSON[]),
                                                CASE WHEN json_type(s->'line') = 'OBJECT' THEN [s->'line'] END, []) AS ls
                    FROM (SELECT root_id, unnest(coalesce(TRY_CAST(l AS JSON[]), [])) AS s
                          FROM stage_details WHERE l IS NOT NULL)))))""",
    "defined_data": """
        INSERT INTO defined_data BY NAME
        SELECT root_id, coalesce(d->>'$.metadata.documentID', risk_id) AS risk_id, pos - 1 AS position,
               e->>'tag' AS tag, e->>'value' AS value, e->>'mrcHeading' AS heading,
               e->>'originalHeading' AS original_heading, e->>'section' AS section,
               TRY_CAST(e->>'lineItemIndex' AS INTEGER) AS line_item_index, e->>'name' AS name,
               e->>'parentID' AS parent_id,
               CASE WHEN suffix(e->>'tag', '_Amount') THEN ws_currency(e->>'value') END AS currency,
               CASE WHEN suffix(e->>'tag', '_Amount') THEN ws_amount(e->>'value') END AS amount,
               CASE WHEN suffix(e->>'tag', '_%') OR suffix(e->>'tag', '_Percentage') THEN ws_pct(e->>'value') END
                 AS percentage,
               CASE WHEN suffix(e->>'tag', '_Date') THEN ws_date(e->>'value') END AS date_value
        FROM (SELECT root_id, risk_id, d, unnest(items) AS e, unnest(range(1, len(items) + 1)) AS pos
              FROM (SELECT root_id, risk_id, d, coalesce(TRY_CAST(d->'definedData' AS JSON[]), []) AS items
                    FROM stage_details WHERE d IS NOT NULL))""",
    "facility_links": """
        INSERT INTO facility_links (root_id, facility_root_id)
        SELECT DISTINCT root_id, split_part(f, '::', 1) FROM (
          SELECT root_id, unnest(coalesce(TRY_CAST(c->'$.control.associatedFacilityIDs' AS VARCHAR[]), [])) AS f
          FROM stage_details WHERE c IS NOT NULL) WHERE coalesce(f, '') <> ''""",
}



@dataclasses.dataclass
class DetailLoad:
    files: int
    roots: int
    failed: dict[str, str]
    removed_roots: int
    counts: dict[str, int]
    older: int = 0
    """Roots fetched but not applied: the warehouse already held a newer contract for them."""
    drift: list = dataclasses.field(default_factory=list)
    """Unknown or missing fields in the contracts and line sets loaded (``detail_drift``)."""


def pending(conn: duckdb.DuckDBPyConnection, raw_dir: Path, user_id: str) -> list[Path]:
    folder = details_dir(raw_dir, user_id)
    files = sorted(folder.glob("*.jsonl")) if folder.exists() else []
    loaded = {r[0] for r in conn.execute("SELECT path FROM detail_loads WHERE user_id = ?", [user_id]).fetchall()}
    return [f for f in files if f.relative_to(raw_dir).as_posix() not in loaded]


def scope(raw_dir: Path, user_id: str) -> Scope:
    """A PostgreSQL load of the organisation's detail files: the roots in the files not loaded yet, the
    roots it sees, and the roots whose risk is gone (their details move to ``contracts_gone``)."""
    def staged_roots(conn: duckdb.DuckDBPyConnection) -> list[str]:
        files = pending(conn, raw_dir, user_id)
        if not files:
            return []
        return [r for (r,) in conn.execute(
            "SELECT DISTINCT root_id FROM read_json(?, format = 'newline_delimited', columns = {root_id: 'VARCHAR'})",
            [[str(f) for f in files]]).fetchall()]

    return Scope(writes=(*DETAIL_TABLES, "contracts_gone", "detail_failures", "detail_loads", "schema_drift"),
                 reads=("risks",), users=(user_id,), staged_roots=staged_roots, orphan_details=DETAIL_TABLES)


def load_pending(conn: duckdb.DuckDBPyConnection, raw_dir: Path, user_id: str, now: dt.datetime | None = None) -> DetailLoad:
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    files = pending(conn, raw_dir, user_id)
    failed: dict[str, str] = {}
    roots = older = 0
    drift: list[dict] = []
    if files:  # read before the transaction: a read retried with a larger limit must not abort it
        read_objects(conn, STAGE, [[str(f) for f in files]], files)
    with db.transaction(conn):
        if files:
            roots = conn.execute("SELECT count(*) FROM stage_details WHERE error IS NULL").fetchone()[0]
            failed = dict(conn.execute("SELECT root_id, error FROM stage_details WHERE error IS NOT NULL").fetchall())
            conn.execute("DELETE FROM stage_details WHERE error IS NOT NULL")
            older = conn.execute(OLDER_THAN_STORED).fetchone()[0]
            roots -= older
            drift = detail_drift(conn)
            _record_drift(conn, drift, now)
            for table in DETAIL_TABLES:
                conn.execute(f"DELETE FROM {db.ident(table)} WHERE root_id IN (SELECT root_id FROM stage_details)")  # noqa: S608
            for sql in INSERTS.values():
                conn.execute(sql)
            conn.execute("DELETE FROM detail_failures WHERE user_id = ?", [user_id])
            for root, error in failed.items():
                conn.execute("INSERT INTO detail_failures (root_id, user_id, error, failed_at) VALUES (?, ?, ?, ?)",
                             [root, user_id, error, now])
            for f in files:
                conn.execute("INSERT INTO detail_loads (path, user_id, loaded_at, roots, failed) VALUES (?, ?, ?, ?, ?)",
                             [f.relative_to(raw_dir).as_posix(), user_id, now, roots, len(failed)])
            conn.execute("DROP TABLE stage_details")
        removed = conn.execute(
            "SELECT count(*) FROM contracts WHERE root_id NOT IN (SELECT root_id FROM risks)").fetchone()[0]
        cols = ", ".join(c.name for c in contracts_table.columns)
        conn.execute(f"INSERT INTO contracts_gone ({cols}, gone_at) SELECT {cols}, ? FROM contracts "  # noqa: S608
                     "WHERE root_id NOT IN (SELECT root_id FROM risks)", [now])
        for table in DETAIL_TABLES:  # roots no synced organisation sees any more: kept in contracts_gone
            conn.execute(f"DELETE FROM {db.ident(table)} WHERE root_id NOT IN (SELECT root_id FROM risks)")  # noqa: S608
    counts = {t: db.row_count(conn, t) for t in DETAIL_TABLES}
    return DetailLoad(len(files), roots, failed, removed, counts, older, drift)
