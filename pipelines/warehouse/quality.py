"""Data quality rules as SQL: each returns an ``Outcome`` (passed, and the figures behind it).

Dagster's check declarations (``pipelines/defs/checks.py``) name them; nothing here knows Dagster."""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import Any

import duckdb

CHANNEL_PATTERN = "^[a-z0-9]+_[A-Za-z0-9]+$"


@dataclasses.dataclass(frozen=True)
class Outcome:
    passed: bool
    metadata: dict[str, Any]


def _count(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    return int(conn.execute(sql, params or []).fetchone()[0])


def unique_key(conn, table: str, key: str) -> Outcome:
    dupes = _count(conn, f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)")  # noqa: S608
    return Outcome(passed=dupes == 0, metadata={"duplicate_keys": dupes, "key": key})


def arrived_once(key: str, arrived_twice: int) -> Outcome:
    """No key came twice in the answer just loaded (the loader keeps the last of each, a guess when two
    records disagree): the table's own unique-key check cannot see that, since it runs after."""
    return Outcome(passed=arrived_twice == 0, metadata={"keys_more_than_once_in_answer": arrived_twice, "key": key})


def has_parent(conn, child: str, parent: str, column: str) -> Outcome:
    """Rows of ``child`` whose ``column`` (one column, or several as ``(a, b)``) matches no row of ``parent``.
    A row with a NULL in its key matches nothing, so it counts; a NULL key in ``parent`` hides no orphan
    (``NOT IN`` would: one NULL there and every row passes)."""
    names = [c.strip() for c in column.strip("()").split(",")]
    match = " AND ".join(f"p.{c} = c.{c}" for c in names)
    orphans = _count(conn, f"SELECT count(*) FROM {child} c WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})")  # noqa: S608
    return Outcome(passed=orphans == 0, metadata={"orphan_rows": orphans, "parent": parent})


def no_null_root_ids(conn) -> Outcome:
    nulls = _count(conn, "SELECT count(*) FROM risks WHERE root_id IS NULL OR root_id = ''")
    return Outcome(passed=nulls == 0, metadata={"null_root_ids": nulls})


def channel_format(conn) -> Outcome:
    """Channels that do not look like ``company_TEAM``: how many, and five of them, in one pass."""
    total, bad = conn.execute(
        "SELECT count(*), min(channel, 5) FROM risk_channels WHERE NOT regexp_full_match(channel, ?)", [CHANNEL_PATTERN]
    ).fetchone()
    return Outcome(passed=total == 0, metadata={"bad_channels": total, "examples": ", ".join(bad or [])})


def unparsed_timestamps(conn) -> Outcome:
    """Risk timestamps the answer carried that no form of the timestamp rule could read (NULL in the
    typed column, kept as sent in ``raw``)."""
    bad = conn.execute(
        """SELECT count(*), list(DISTINCT v)[:5] FROM (
             SELECT lower(k) AS k, trim(json_extract_string(raw, '$."' || k || '"')) AS v, created_at, updated_at
             FROM (SELECT raw, created_at, updated_at, unnest(json_keys(raw)) AS k FROM risks)
             WHERE lower(k) IN ('createdat', 'updatedat'))
           WHERE coalesce(v, '') <> ''
             AND ((k = 'createdat' AND created_at IS NULL) OR (k = 'updatedat' AND updated_at IS NULL))"""
    ).fetchone()
    return Outcome(passed=bad[0] == 0, metadata={"unreadable_timestamps": bad[0], "examples": bad[1] or []})


def api_distinct_ids(conn, raw_path: str, items: int, set_aside: list[int] | tuple[int, ...] = (),
                     read_option: str = "") -> int:
    """The distinct ids of a landed risk list, counted anew from the file (whatever spelling of ``id``),
    less its elements at the positions ``set_aside`` (quarantined as it was landed; ``read_option``: what
    reading past the largest of them needs, ``Landed.read_option``)."""
    sql = ("SELECT count(DISTINCT coalesce(json->>'id', json->>'Id', json->>'ID')) "  # noqa: S608 - a number
           f"FROM read_json_objects(?, format = 'array'{read_option}) WITH ORDINALITY AS e(json, ord) "
           "WHERE NOT list_contains(?::BIGINT[], ord)")
    return _count(conn, sql, [raw_path, list(set_aside)]) if items else 0


def partition_matches_api(conn, user_id: str, raw_path: str, items: int, counted: Future[int] | None = None,
                          set_aside: tuple[int, ...] = ()) -> Outcome:
    """This organisation's visible risks equal the distinct ids of the API answer less the elements set
    aside, counted anew (``counted``: that count, taken beside the load with ``db.beside``)."""
    expected = counted.result() if counted is not None else api_distinct_ids(conn, raw_path, items, set_aside)
    actual = _count(conn, "SELECT count(*) FROM risk_visibility WHERE user_id = ?", [user_id])
    return Outcome(passed=expected == actual, metadata={"api_distinct_ids": expected, "warehouse_rows": actual})


def signed_total(conn) -> Outcome:
    over = conn.execute(
        """SELECT root_id, sum(signed_pct) FROM market_lines WHERE set_type = 'signed'
           GROUP BY 1 HAVING sum(signed_pct) > 100 LIMIT 5"""
    ).fetchall()
    return Outcome(passed=not over, metadata={"roots_over_100": len(over), "examples": str(over)})


def quarantined(conn, endpoint: str, user_id: str | None = None) -> Outcome:
    """Documents of the endpoint's answers set aside (not loaded, kept in the landing): how many, why,
    and which (for one organisation, or for all)."""
    where, params = ("endpoint = ? AND user_id = ?", [endpoint, user_id]) if user_id else ("endpoint = ?", [endpoint])
    rows = conn.execute(f"SELECT user_id, document_id, reason, position, path FROM quarantine WHERE {where} "  # noqa: S608
                        "ORDER BY user_id, path, position", params).fetchall()
    reasons: dict[str, int] = {}
    for r in rows:
        reasons[r[2]] = reasons.get(r[2], 0) + 1
    return Outcome(passed=not rows, metadata={
        "set_aside": len(rows), "reasons": reasons,
        "examples": [{"organisation": u, "id": i, "reason": why, "position": pos, "file": f}
                     for u, i, why, pos, f in rows[:10]]})


# -- marts: each ties back to the base tables ---------------------------------------------------

BASE_ROOT_ORGS = """CREATE OR REPLACE TEMP VIEW base_root_orgs AS
    SELECT DISTINCT r.root_id, coalesce(s.company_id, s.user_id) AS company_id
    FROM risks r JOIN risk_visibility v USING (risk_id) JOIN sync_state s USING (user_id)"""
"""Which synced organisation sees which root, straight from the base tables."""

MART_TIES = {
    # check name: (mart, description, per-company figure from the mart, the same figure from the base tables)
    "mart_status_monthly_ties_back": (
        "mart_status_monthly", "this month's placements per organisation = its distinct roots in risks",
        "SELECT company_id, sum(placements) FROM mart_status_monthly WHERE month = (SELECT max(month) FROM "
        "mart_status_monthly) GROUP BY 1",
        "SELECT company_id, count(*) FROM base_root_orgs GROUP BY 1",
    ),
    "mart_placements_ties_back": (
        "mart_placements", "placements per organisation = its distinct roots in risks",
        "SELECT company_id, count(*) FROM mart_placements GROUP BY 1",
        "SELECT company_id, count(*) FROM base_root_orgs GROUP BY 1",
    ),
    "mart_placing_funnel_ties_back": (
        "mart_placing_funnel", "signed placements per organisation = roots with a signed line or a signed revision",
        "SELECT company_id, sum(signed) FROM mart_placing_funnel GROUP BY 1",
        """SELECT o.company_id, count(*) FROM base_root_orgs o
            WHERE o.root_id IN (SELECT root_id FROM market_lines WHERE set_type = 'signed'
                                UNION SELECT root_id FROM risk_history
                                      WHERE ws_status(status) = 'Signed' OR ws_status(status) LIKE 'Endorsement%')
              AND o.root_id IN (SELECT root_id FROM risks
                                WHERE NOT ws_pre_market(status)
                                UNION SELECT root_id FROM risk_history WHERE NOT ws_pre_market(status))
            GROUP BY 1""",
    ),
    "mart_carrier_participation_ties_back": (
        "mart_carrier_participation", "written and signed % per organisation = the sums over market_lines",
        "SELECT company_id, sum(written_pct_total), sum(signed_pct_total) FROM mart_carrier_participation GROUP BY 1",
        """SELECT o.company_id, sum(m.written_pct) FILTER (WHERE m.set_type = 'written'),
                  sum(m.signed_pct) FILTER (WHERE m.set_type = 'signed')
           FROM market_lines m JOIN base_root_orgs o USING (root_id) GROUP BY 1""",
    ),
    "mart_open_items_ties_back": (
        "mart_open_items", "open items per organisation = roots whose latest instance is open, counted in risks",
        "SELECT company_id, count(*) FROM mart_open_items GROUP BY 1",
        """SELECT o.company_id, count(*) FROM base_root_orgs o JOIN (
              SELECT root_id, arg_max(status, ws_instance_rank(risk_id) * 1e10
                                               + coalesce(epoch(updated_at), 0)) AS status
              FROM risks GROUP BY 1) cur USING (root_id)
            WHERE ws_open_stage(cur.status) IS NOT NULL
              AND (SELECT epoch(max(as_of)) FROM mart_open_items) - epoch(coalesce(
                    (SELECT min(h.valid_from) FROM risk_history h WHERE h.root_id = o.root_id
                                                                     AND ws_status(h.status) = ws_status(cur.status)),
                    (SELECT max(updated_at) FROM risks r WHERE r.root_id = o.root_id))) > CAST(? AS DOUBLE) * 86400
            GROUP BY 1""",
    ),
    "mart_book_premium_ties_back": (
        "mart_book_premium", "premium and placements per organisation and currency = the MI rows of the placements "
        "it sees",
        "SELECT company_id || ' ' || coalesce(currency, '(none)'), sum(premium), sum(placements) FROM mart_book_premium "
        "GROUP BY 1",
        """SELECT s.company_id || ' ' || coalesce(m.premium_currency, '(none)'), sum(m.premium_amount), count(*)
           FROM mi_report m JOIN (SELECT user_id, coalesce(company_id, user_id) AS company_id FROM sync_state) s
                USING (user_id)
           WHERE (m.root_id, s.company_id) IN (SELECT root_id, company_id FROM base_root_orgs)
           GROUP BY 1""",
    ),
    "mart_premium_monthly_ties_back": (
        "mart_premium_monthly", "signed premium per organisation and currency = premium × signed line over the MI "
        "report's carrier lines",
        "SELECT company_id || ' ' || coalesce(currency, '(none)'), sum(signed_premium) FROM mart_premium_monthly GROUP BY 1",
        """SELECT s.company_id || ' ' || coalesce(m.premium_currency, '(none)'),
                  sum(m.premium_amount * c.signed_pct * 0.01)
           FROM mi_report m JOIN (SELECT user_id, coalesce(company_id, user_id) AS company_id FROM sync_state) s
                USING (user_id)
                JOIN mi_report_carriers c USING (user_id, root_id)
           WHERE (m.root_id, s.company_id) IN (SELECT root_id, company_id FROM base_root_orgs)
             AND (c.written_pct IS NOT NULL OR c.signed_pct IS NOT NULL)
           GROUP BY 1""",
    ),
}


def mart_ties_back(conn, name: str, open_item_days: int) -> Outcome:
    """Compares a per-organisation figure of a mart with the same figure computed from the base tables."""
    _mart, _description, mart_sql, base_sql = MART_TIES[name]
    conn.execute(BASE_ROOT_ORGS)
    params = [open_item_days] if "?" in base_sql else []
    got = {r[0]: tuple(r[1:]) for r in conn.execute(mart_sql).fetchall()}
    want = {r[0]: tuple(r[1:]) for r in conn.execute(base_sql, params).fetchall()}
    keys = sorted(set(got) | set(want), key=str)
    differ = {str(k): {"mart": str(got.get(k)), "base": str(want.get(k))} for k in keys
              if not _same(got.get(k), want.get(k))}
    return Outcome(
        passed=not differ,
        metadata={"organisations": len(keys), "differences": differ,
                  "mart": {str(k): [str(x) for x in v] for k, v in got.items()}},
    )


def _same(mart: tuple | None, base: tuple | None) -> bool:
    """Equal figures. An organisation one side has no row for (a base query's GROUP BY has none for an
    organisation with no signed placement; the mart has its row with 0) agrees when the other side's
    figures are all zero."""
    def zero(values: tuple | None) -> bool:
        return values is None or all(v in (0, None) for v in values)

    return mart == base or (mart is None and zero(base)) or (base is None and zero(mart))


def detail_drift(drift: list[dict]) -> Outcome:
    """The documents just loaded (a risk list, contracts and line sets) carry only fields the loader
    knows, and every field it reads."""
    return Outcome(passed=not drift, metadata={"fields": len(drift), "drift": drift[:20]})


def detail_failures(conn, user_id: str) -> Outcome:
    """Roots of this organisation whose detail calls failed (they are fetched again next run)."""
    failures = conn.execute("SELECT root_id, error FROM detail_failures WHERE user_id = ?", [user_id]).fetchall()
    return Outcome(passed=not failures, metadata={"failed_roots": len(failures), "examples": dict(failures[:10])})


# -- money ----------------------------------------------------------------------------------------

MI_VALUES = (
    # (field as the platform names it, the table, its text, what it parsed to)
    ("limit", "mi_report", "limit_raw", "limit_amount"),
    ("limit currency", "mi_report", "limit_raw", "limit_currency"),
    ("premium", "mi_report", "premium_raw", "premium_amount"),
    ("premiumCCY", "mi_report", "premium_raw", "premium_currency"),
    ("brokerage", "mi_report", "brokerage_raw", "brokerage_pct"),
    ("periodFrom", "mi_report", "raw->>'periodFrom'", "period_from"),
    ("periodTo", "mi_report", "raw->>'periodTo'", "period_to"),
    ("writtenLinePerc", "mi_report_carriers", "written_raw", "written_pct"),
    ("signedLinePerc", "mi_report_carriers", "signed_raw", "signed_pct"),
    ("riskCreatedAt", "mi_report", "raw->>'riskCreatedAt'", "risk_created_at"),
    ("riskUpdatedAt", "mi_report", "raw->>'riskUpdatedAt'", "risk_updated_at"),
    ("dataVersion", "mi_report", "raw->>'dataVersion'", "data_version"),
)


def unparsed_values(conn, values=MI_VALUES) -> Outcome:
    """Values the platform sent that did not parse (NULL in the typed column, the text kept beside it).
    Text meaning "none yet" ('', TBA, N/A, ...) is not counted."""
    found: dict[str, dict] = {}
    for field, table, text, typed in values:
        n, examples = conn.execute(
            f"SELECT count(*), list(DISTINCT {text})[:5] FROM {table} "  # noqa: S608
            f"WHERE {typed} IS NULL AND NOT ws_not_given({text})").fetchone()
        if n:
            found[field] = {"values": n, "examples": examples}
    return Outcome(passed=not found, metadata={"unparsed": found, "fields_checked": len(values)})


CONTRACT_VALUES = (
    ("control.isFacility", "contracts", "raw->'control'->>'isFacility'", "is_facility"),
    ("createdAt", "contracts", "raw->>'createdAt'", "created_at"),
    ("updatedAt", "contracts", "raw->>'updatedAt'", "updated_at"),
    ("Inception_Date", "contracts", "ws_placeholder(raw, 'Inception_Date')", "inception_date"),
    ("Expiry_Date", "contracts", "ws_placeholder(raw, 'Expiry_Date')", "expiry_date"),
)
"""The contract's typed fields, each beside the text it was read from (kept in ``raw``)."""

REFERENCE_VALUES = (
    ("isOffline", "organisations", "raw->>'isOffline'", "is_offline"),
    ("isTestOnly", "organisations", "raw->>'isTestOnly'", "is_test_only"),
    ("createdAt", "organisations", "raw->>'createdAt'", "created_at"),
    ("updatedAt", "organisations", "raw->>'updatedAt'", "updated_at"),
)
"""The companies' typed fields, each beside the text it was read from (kept in ``raw``)."""

MARKET_LINE_VALUES = (
    ("writtenLinePercentageString", "market_lines", "written_raw", "written_pct"),
    ("signedLinePercentageString", "market_lines", "signed_raw", "signed_pct"),
)


DEFINED_DATA_VALUES = (
    ("*_Amount", "defined_data", "value", "CASE WHEN suffix(tag, '_Amount') THEN amount ELSE 0 END"),
    ("*_Amount currency", "defined_data", "value", "CASE WHEN suffix(tag, '_Amount') THEN currency ELSE '' END"),
    ("*_% / *_Percentage", "defined_data", "value",
     "CASE WHEN suffix(tag, '_%') OR suffix(tag, '_Percentage') THEN percentage ELSE 0 END"),
    ("*_Date", "defined_data", "value", "CASE WHEN suffix(tag, '_Date') THEN date_value ELSE DATE '2000-01-01' END"),
)


def mi_current(conn) -> Outcome:
    """Every placement a synced organisation sees has its MI row, at least as new as the risk list's
    last change. A row missing or behind means a change the MI report did not send (made between a
    prepare and its fetch, or a cursor kept otherwise than assumed): its money is stale."""
    missing, behind, examples = conn.execute(
        """WITH seen AS (
             SELECT v.user_id, r.root_id, max(r.updated_at) AS updated_at
             FROM risk_visibility v JOIN risks r USING (risk_id)
             WHERE v.user_id IN (SELECT user_id FROM sync_state) GROUP BY ALL)
           SELECT count(*) FILTER (WHERE m.root_id IS NULL),
                  count(*) FILTER (WHERE m.risk_updated_at < s.updated_at),
                  list(s.root_id) FILTER (WHERE m.root_id IS NULL OR m.risk_updated_at < s.updated_at)[:5]
           FROM seen s LEFT JOIN mi_report m USING (user_id, root_id)""").fetchone()
    return Outcome(passed=missing == 0 and behind == 0,
                   metadata={"placements_without_mi_row": missing, "mi_rows_older_than_risk_list": behind,
                             "examples": examples or []})


def shares_sum_to_premium(conn) -> Outcome:
    """For every fully signed placement (signed lines total 100%), the carriers' signed premium shares
    add up to the 100% premium, exactly, in its currency."""
    bad = conn.execute(
        """SELECT company_id, root_id, any_value(premium), sum(signed_premium) FROM mart_carrier_shares
           GROUP BY company_id, root_id
           HAVING sum(signed_pct) = 100 AND any_value(premium) IS NOT NULL
              AND sum(signed_premium) <> any_value(premium)""").fetchall()
    checked = conn.execute(
        """SELECT count(*) FROM (SELECT 1 FROM mart_carrier_shares GROUP BY company_id, root_id
           HAVING sum(signed_pct) = 100 AND any_value(premium) IS NOT NULL)""").fetchone()[0]
    return Outcome(passed=not bad, metadata={"fully_signed_placements": checked, "not_adding_up": len(bad),
                                             "examples": [[str(x) for x in r] for r in bad[:5]]})
