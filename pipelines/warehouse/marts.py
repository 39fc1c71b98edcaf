"""The marts (``models/marts.py``): rebuilt from the base tables in one transaction, then exported
to Parquet for tools that prefer files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import duckdb

from models import MART_TABLES, metadata
from pipelines.config import DEFAULT_OPEN_ITEM_DAYS as OPEN_ITEM_DAYS
from pipelines.warehouse import db
from pipelines.warehouse.postgres import Scope

SCOPE = Scope(writes=(*MART_TABLES, "marts_state"), whole=tuple(t.name for t in metadata.sorted_tables), lock="marts")
"""A PostgreSQL build reads every table whole (one consistent snapshot) and replaces the marts and their record."""

LOADS = """SELECT md5(concat_ws('|',
    (SELECT count(*) || ' ' || coalesce(max(fetched_at)::VARCHAR, '') FROM raw_responses),
    (SELECT count(*) || ' ' || coalesce(max(loaded_at)::VARCHAR, '') FROM detail_loads),
    (SELECT count(*) || ' ' || coalesce(max(loaded_at)::VARCHAR, '') FROM mi_report_loads),
    (SELECT coalesce(string_agg(concat_ws(' ', user_id, sha256, synced_at::VARCHAR), ',' ORDER BY user_id), '')
     FROM sync_state)))"""
"""A digest of every load the warehouse holds: each landed answer it loaded (an organisation's risk list, the
corporate list), each detail file and MI answer, and each organisation's current list. Any load adds a row
(or moves a time) in one of them, and a departed organisation takes its row out of ``sync_state``: the
digest then differs. It counts rows rather than trusting the newest time alone, so a load that committed
after another with a later clock (two writers at once) still changes it."""

BUILT_FROM = f"SELECT built_at, open_item_days FROM marts_state WHERE loads = ({LOADS})"  # noqa: S608
"""The marts' record when they were built from the loads the warehouse holds now; no row otherwise."""

# Which synced organisation sees which placement, and each placement as its most advanced instance.
SETUP = (
    """CREATE OR REPLACE TEMP TABLE m_orgs AS
       SELECT s.user_id, coalesce(s.company_id, s.user_id) AS company_id,
              coalesce(o.name, s.company_id, s.user_id) AS organisation
       FROM sync_state s LEFT JOIN organisations o ON o.company_id = s.company_id""",
    """CREATE OR REPLACE TEMP TABLE m_root_orgs AS
       SELECT DISTINCT r.root_id, o.company_id, o.organisation
       FROM risk_visibility v JOIN risks r USING (risk_id) JOIN m_orgs o USING (user_id)""",
    """CREATE OR REPLACE TEMP TABLE m_roots AS
       SELECT root_id, ws_status(status) AS status, contract_type, umr, insured_name, placing_broker_channel,
              updated_at
       FROM risks
       QUALIFY row_number() OVER (PARTITION BY root_id
                                  ORDER BY ws_instance_rank(risk_id) DESC, updated_at DESC NULLS LAST, risk_id DESC) = 1""",
    # Every revision, its status in the one-word form (the platform also sends "Firm Order" for FirmOrder).
    "CREATE OR REPLACE TEMP VIEW m_history AS SELECT * REPLACE (ws_status(status) AS status) FROM risk_history",
    # Each organisation's MI row of each placement it currently sees.
    """CREATE OR REPLACE TEMP TABLE m_mi AS
       SELECT o.company_id, o.organisation, m.* REPLACE (ws_status(m.status) AS status)
       FROM mi_report m JOIN m_orgs o USING (user_id)
       WHERE (m.root_id, o.company_id) IN (SELECT root_id, company_id FROM m_root_orgs)
       QUALIFY row_number() OVER (PARTITION BY o.company_id, m.root_id ORDER BY m.landed_at DESC, m.user_id) = 1""",
)

BUILD = {
    "mart_status_monthly": """
        WITH h AS (
          SELECT root_id, status, valid_from, coalesce(valid_to, TIMESTAMP '9999-12-31') AS valid_to,
                 ws_instance_rank(risk_id) AS rnk
          FROM m_history WHERE valid_from IS NOT NULL),
        months AS (
          SELECT CAST(unnest(generate_series(date_trunc('month', (SELECT min(valid_from) FROM h)),
                                             date_trunc('month', $as_of), INTERVAL 1 MONTH)) AS DATE) AS month),
        top AS (
          SELECT m.month, h.root_id, h.status
          FROM months m JOIN h ON h.valid_from < m.month + INTERVAL 1 MONTH AND h.valid_to >= m.month + INTERVAL 1 MONTH
          QUALIFY row_number() OVER (PARTITION BY m.month, h.root_id ORDER BY h.rnk DESC, h.valid_from DESC) = 1)
        SELECT t.month, o.company_id, o.organisation, t.status, coalesce(r.contract_type, '(unknown)'), count(*)
        FROM top t JOIN m_root_orgs o USING (root_id) LEFT JOIN m_roots r USING (root_id)
        GROUP BY ALL""",
    "mart_placements": """
        WITH hist AS (
          SELECT root_id,
                 bool_or(NOT ws_pre_market(status)) AS went,
                 min(valid_from) FILTER (WHERE status LIKE 'FirmOrder%' OR status = 'Signed'
                                           OR status LIKE 'Endorsement%') AS firm_order_rev,
                 min(valid_from) FILTER (WHERE status = 'Signed' OR status LIKE 'Endorsement%') AS signed_rev
          FROM m_history GROUP BY root_id),
        docs AS (
          SELECT root_id, min(created_at) AS first_created,
                 min(created_at) FILTER (WHERE suffix(risk_id, '::FO')) AS firm_order_created,
                 bool_or(NOT ws_pre_market(status)) AS went
          FROM risks GROUP BY root_id),
        lines AS (
          SELECT root_id, min(stamped_at) AS first_signed FROM market_lines WHERE set_type = 'signed' GROUP BY root_id),
        p AS (
          SELECT r.root_id, r.umr, r.insured_name, r.contract_type, r.status,
                 coalesce(h.went, FALSE) OR coalesce(d.went, FALSE) AS went_to_market, d.first_created,
                 coalesce(d.firm_order_created, h.firm_order_rev) AS firm_order_at,
                 coalesce(l.first_signed, h.signed_rev) AS signed_at
          FROM m_roots r JOIN docs d USING (root_id) LEFT JOIN hist h USING (root_id) LEFT JOIN lines l USING (root_id))
        SELECT p.root_id, o.company_id, o.organisation, p.umr, p.insured_name, p.contract_type, p.status,
               p.went_to_market, CASE WHEN p.went_to_market THEN p.first_created END AS requested_at,
               p.firm_order_at, p.signed_at,
               ws_days(requested_at, p.firm_order_at), ws_days(p.firm_order_at, p.signed_at),
               ws_days(requested_at, p.signed_at)
        FROM p JOIN m_root_orgs o USING (root_id)""",
    "mart_placing_funnel": """
        SELECT CAST(date_trunc('month', requested_at) AS DATE), company_id, organisation, contract_type,
               count(*), count(firm_order_at), count(signed_at),
               median(days_to_firm_order), median(days_firm_order_to_signed), median(days_to_signed)
        FROM mart_placements WHERE went_to_market AND requested_at IS NOT NULL
        GROUP BY ALL""",
    "mart_carrier_participation": """
        WITH per AS (
          SELECT root_id, carrier_company_id,
                 sum(written_pct) FILTER (WHERE set_type = 'written') AS written,
                 sum(signed_pct) FILTER (WHERE set_type = 'signed') AS signed,
                 bool_or(is_leader AND set_type = 'written') AS is_lead
          FROM market_lines GROUP BY ALL)
        SELECT CAST(date_trunc('month', c.inception_date) AS DATE), o.company_id, o.organisation,
               p.carrier_company_id, coalesce(carrier.name, p.carrier_company_id),
               nullif(upper(split_part(c.lead_underwriter_channel, '_', 1)), ''),
               count(p.written), count(*) FILTER (WHERE p.is_lead), count(p.signed),
               sum(p.written), sum(p.signed), avg(p.written), avg(p.signed)
        FROM per p JOIN m_root_orgs o USING (root_id) LEFT JOIN contracts c USING (root_id)
             LEFT JOIN organisations carrier ON carrier.company_id = p.carrier_company_id
        GROUP BY ALL""",
    "mart_carrier_shares": """
        WITH lines AS (
          SELECT user_id, root_id, carrier_company_id, any_value(carrier) AS carrier,
                 bool_or(coalesce(is_lead, FALSE)) AS is_lead, sum(written_pct) AS written_pct,
                 sum(signed_pct) AS signed_pct
          FROM mi_report_carriers WHERE written_pct IS NOT NULL OR signed_pct IS NOT NULL GROUP BY ALL)
        SELECT m.root_id, m.company_id, m.organisation, m.umr, m.insured, m.contract_type, m.status, m.period_from,
               m.premium_currency, m.premium_amount, m.brokerage_pct, l.carrier_company_id, l.carrier, l.is_lead,
               l.written_pct, l.signed_pct,
               m.premium_amount * l.written_pct * 0.01, m.premium_amount * l.signed_pct * 0.01,
               CAST(m.premium_amount * l.signed_pct * 0.01 * m.brokerage_pct * 0.01 AS DECIMAL(38, 12))
        FROM m_mi m JOIN lines l USING (user_id, root_id)""",
    "mart_premium_monthly": """
        SELECT CAST(date_trunc('month', period_from) AS DATE), company_id, organisation, contract_type,
               carrier_company_id, min(carrier), currency, count(*), sum(written_premium), sum(signed_premium),
               sum(signed_brokerage)
        FROM mart_carrier_shares
        -- the mart's key: a carrier company that goes by two names is one row (the first name), never two
        GROUP BY 1, company_id, organisation, contract_type, carrier_company_id, currency""",
    "mart_book_premium": """
        SELECT CAST(date_trunc('month', period_from) AS DATE), company_id, organisation, contract_type,
               premium_currency, count(*), sum(premium_amount),
               CAST(sum(premium_amount * brokerage_pct * 0.01) AS DECIMAL(38, 12)),
               count(*) FILTER (WHERE ws_status(status) IN ('FirmOrder', 'Signed') OR ws_status(status) LIKE 'Endorsement%'),
               sum(premium_amount) FILTER (WHERE ws_status(status) IN ('FirmOrder', 'Signed')
                                            OR ws_status(status) LIKE 'Endorsement%'),
               count(*) FILTER (WHERE premium_amount IS NULL AND NOT ws_not_given(premium_raw))
        FROM m_mi GROUP BY ALL""",
    "mart_placing_times": """
        WITH t AS (
          SELECT m.root_id, m.company_id, m.organisation, m.contract_type, m.status,
                 min(c.quotation_request_at) AS requested, min(c.quoted_at) AS quoted,
                 min(c.firm_order_at) AS firm, min(c.signed_at) AS signed
          FROM m_mi m JOIN mi_report_carriers c USING (user_id, root_id) GROUP BY ALL)
        SELECT root_id, company_id, organisation, contract_type, status, requested, quoted, firm, signed,
               ws_days(requested, quoted), ws_days(requested, firm), ws_days(firm, signed), ws_days(requested, signed)
        FROM t""",
    "mart_open_items": """
        WITH since AS (SELECT root_id, status, min(valid_from) AS since FROM m_history GROUP BY ALL)
        SELECT * FROM (
          SELECT r.root_id, o.company_id, o.organisation, r.umr, r.insured_name, r.contract_type, r.status,
                 ws_open_stage(r.status),
                 r.placing_broker_channel, coalesce(s.since, r.updated_at) AS status_since,
                 ws_days(coalesce(s.since, r.updated_at), $as_of) AS days_in_status, $as_of
          FROM m_roots r JOIN m_root_orgs o USING (root_id) LEFT JOIN since s USING (root_id, status)
          WHERE ws_open_stage(r.status) IS NOT NULL)
        WHERE days_in_status > $days""",
}


@dataclasses.dataclass
class Built:
    counts: dict[str, int]
    as_of: dt.datetime
    open_item_days: int
    loads: str = ""
    """The digest of the loads they were built from (``LOADS``), read in the build's transaction."""


def prepare(conn: duckdb.DuckDBPyConnection) -> None:
    """The temporary tables the marts share (this connection only)."""
    for sql in SETUP:
        conn.execute(sql)


def build(conn: duckdb.DuckDBPyConnection, days: int = OPEN_ITEM_DAYS, as_of: dt.datetime | None = None) -> Built:
    """Rebuilds every mart in one transaction: readers see the old marts or the new, never a mix."""
    as_of = (as_of or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)
    counts = {}
    with db.transaction(conn):
        [(loads,)] = conn.execute(LOADS).fetchall()
        prepare(conn)
        for table in MART_TABLES:
            sql = BUILD[table]
            params = {k: v for k, v in {"as_of": as_of, "days": days}.items() if f"${k}" in sql}
            conn.execute(f"DELETE FROM {db.ident(table)}")  # noqa: S608
            conn.execute(f"INSERT INTO {db.ident(table)} {sql}", params)  # noqa: S608
            counts[table] = conn.execute(f"SELECT count(*) FROM {db.ident(table)}").fetchone()[0]  # noqa: S608
    return Built(counts, as_of, days, loads)


def record(conn: duckdb.DuckDBPyConnection, built: Built) -> None:
    """Records what the marts were built from (``marts_state``), once they are built and exported: a build
    that stopped before this leaves the record of the build before, and the next sync builds them again."""
    with db.transaction(conn):
        conn.execute("DELETE FROM marts_state")
        conn.execute("INSERT INTO marts_state (built_at, loads, open_item_days) VALUES (?, ?, ?)",
                     [built.as_of, built.loads, built.open_item_days])


BUILT_KEY = "whitespace_marts_built"
"""The key of the Parquet footer entry that says which build of the marts wrote an export."""


def build_stamp(as_of: dt.datetime) -> str:
    """What an export of the build of ``as_of`` (naive UTC, whole seconds, as ``Built.as_of`` and
    ``marts_state.built_at`` hold it) carries under ``BUILT_KEY``."""
    return f"{as_of:%Y-%m-%dT%H:%M:%S}Z"


def export_parquet(conn: duckdb.DuckDBPyConnection, directory: Path, built: Built | None = None) -> dict[str, Path]:
    """Writes each mart to ``<directory>/<mart>.parquet``: a new file beside the old, then renamed
    over it, so a reader never sees half a file. ``built``: the build the files come from, written in
    each file's footer (``BUILT_KEY``), so that files restored from another build are told apart."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = "" if built is None else f", KV_METADATA {{{BUILT_KEY}: '{build_stamp(built.as_of)}'}}"
    written = {}
    for table in MART_TABLES:
        final = directory / f"{table}.parquet"
        part = directory / f".{table}.parquet.part"
        target = str(part).replace("'", "''")
        conn.execute(f"COPY (SELECT * FROM {db.ident(table)}) TO '{target}' (FORMAT parquet{stamp})")  # noqa: S608
        os.replace(part, final)
        written[table] = final
    return written


def exports_built(directory: Path) -> set[str | None]:
    """The builds (``build_stamp``) the marts' exports in ``directory`` say they come from; None for a file
    that is missing, unreadable or says nothing."""
    found: set[str | None] = set()
    with duckdb.connect() as conn:
        for table in MART_TABLES:
            path = directory / f"{table}.parquet"
            try:
                rows = conn.execute("SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = ?",
                                    [str(path), BUILT_KEY]).fetchall()
            except duckdb.Error:
                rows = []
            found.add(rows[0][0] if rows else None)
    return found
