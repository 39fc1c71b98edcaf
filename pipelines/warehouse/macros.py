"""Every SQL macro of the warehouse, in one place: installed with the schema on every write session."""

from __future__ import annotations

import duckdb

MACROS = (
    # Both platform timestamp forms, ISO 8601 with a zone, and epoch seconds, as UTC TIMESTAMP.
    """CREATE OR REPLACE MACRO ws_ts(s) AS coalesce(
         try_strptime(s, ['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S.%gZ', '%Y-%m-%dT%H:%M:%SZ']),
         CASE WHEN s IS NULL OR trim(s) = '' THEN NULL
              WHEN regexp_full_match(trim(s), '[0-9]+(\\.[0-9]+)?')
                THEN make_timestamp(CAST(CAST(trim(s) AS DOUBLE) * 1000000 AS BIGINT))
              ELSE CAST(timezone('UTC', TRY_CAST(trim(s) AS TIMESTAMPTZ)) AS TIMESTAMP) END)""",
    """CREATE OR REPLACE MACRO ws_bool(s) AS CASE lower(trim(CAST(s AS VARCHAR)))
         WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE WHEN '1' THEN TRUE WHEN '0' THEN FALSE
         WHEN 'yes' THEN TRUE WHEN 'no' THEN FALSE WHEN 'y' THEN TRUE WHEN 'n' THEN FALSE ELSE NULL END""",
    """CREATE OR REPLACE MACRO ws_placeholder(c, tag) AS (
         SELECT ph->>'value' FROM (
           SELECT unnest(coalesce(TRY_CAST(li->'placeholders' AS JSON[]), [])) AS ph
           FROM (SELECT unnest(coalesce(TRY_CAST(c->'$.MRCContract.lineItems' AS JSON[]), [])) AS li))
         WHERE list_contains(coalesce(TRY_CAST(ph->'tags' AS VARCHAR[]), []), tag) LIMIT 1)""",
    """CREATE OR REPLACE MACRO ws_date(s) AS CAST(coalesce(
         try_strptime(trim(s), ['%d %b %Y', '%d %B %Y', '%Y-%m-%d', '%d/%m/%Y', '%B %d, %Y']),
         CAST(TRY_CAST(trim(s) AS TIMESTAMP) AS TIMESTAMP)) AS DATE)""",
    # Statuses also come in display form ("Marketed Only"): compare them without spaces.
    "CREATE OR REPLACE MACRO ws_status(s) AS replace(trim(s), ' ', '')",
    # Not yet shown to the market.
    "CREATE OR REPLACE MACRO ws_pre_market(s) AS ws_status(s) IN ('NotFinalised', 'MarketedOnly', 'Template')",
    # Open items: still being quoted, or a firm order not yet signed.
    """CREATE OR REPLACE MACRO ws_open_stage(s) AS CASE
         WHEN ws_status(s) IN ('QuotationRequest', 'QuotationInPreparation', 'QuotedByUnderwriter', 'BindableQuote')
           THEN 'quotation'
         WHEN ws_status(s) = 'FirmOrder' THEN 'firm order' END""",
    # The most advanced instance of a root: endorsements (::FO::EN1) over the firm order (::FO) over quotes.
    """CREATE OR REPLACE MACRO ws_instance_rank(id) AS
         CASE WHEN contains(id, '::FO::') THEN 3 WHEN suffix(id, '::FO') THEN 2 ELSE 1 END""",
    """CREATE OR REPLACE MACRO ws_days(a, b) AS epoch(b) / 86400.0 - epoch(a) / 86400.0""",
)


def install(conn: duckdb.DuckDBPyConnection) -> None:
    for macro in MACROS:
        conn.execute(macro)
