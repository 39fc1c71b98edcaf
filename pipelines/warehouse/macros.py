"""Every SQL macro of the warehouse, in one place: installed with the schema on every write session."""

from __future__ import annotations

import duckdb

MACROS = (
    # The one timestamp rule, whatever the machine's time zone: the platform's `YYYY-MM-DD hh:mm:ss`
    # and ISO 8601 without a zone are UTC; ISO 8601 with a zone (Z, +01:00) is turned into UTC;
    # numbers are epoch seconds, milliseconds or microseconds, told apart by magnitude (a date after
    # 1973 in milliseconds is over 1e11, which in seconds would be the year 5138). A number under 1e9
    # (before September 2001 in seconds, long before the platform) is no timestamp of its: '20240301'
    # is a date written without dashes, not 1970-08-23, and is NULL like any other text. What cannot be
    # read is NULL (the answer keeps it in `raw`; the `*_timestamps_parse` checks count them).
    # The platform's usual forms go first, through try_strptime: the fast path of a large load.
    r"""CREATE OR REPLACE MACRO ws_ts(s) AS coalesce(
         try_strptime(CAST(s AS VARCHAR), ['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S.%gZ', '%Y-%m-%dT%H:%M:%SZ']),
         CASE
           WHEN s IS NULL OR trim(CAST(s AS VARCHAR)) = '' THEN NULL
           WHEN regexp_full_match(trim(CAST(s AS VARCHAR)), '[0-9]+(\.[0-9]+)?') THEN
             CASE WHEN TRY_CAST(trim(CAST(s AS VARCHAR)) AS DOUBLE) >= 1e14
                    THEN TRY_CAST(make_timestamp(TRY_CAST(trim(CAST(s AS VARCHAR)) AS BIGINT)) AS TIMESTAMP)
                  WHEN TRY_CAST(trim(CAST(s AS VARCHAR)) AS DOUBLE) >= 1e11
                    THEN TRY_CAST(make_timestamp(TRY_CAST(TRY_CAST(trim(CAST(s AS VARCHAR)) AS DOUBLE) * 1000 AS BIGINT))
                                  AS TIMESTAMP)
                  WHEN TRY_CAST(trim(CAST(s AS VARCHAR)) AS DOUBLE) >= 1e9
                    THEN TRY_CAST(make_timestamp(TRY_CAST(TRY_CAST(trim(CAST(s AS VARCHAR)) AS DOUBLE) * 1000000 AS BIGINT))
                                  AS TIMESTAMP) END
           WHEN regexp_matches(trim(CAST(s AS VARCHAR)), '[0-9]{2}:[0-9]{2}.*(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$')
             THEN CAST(timezone('UTC', TRY_CAST(trim(CAST(s AS VARCHAR)) AS TIMESTAMPTZ)) AS TIMESTAMP)
           ELSE TRY_CAST(trim(CAST(s AS VARCHAR)) AS TIMESTAMP) END)""",
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
    # A carrier's own copy (::FO::<COMPANY>::<TEAM>) is not an endorsement: it ranks as a quote would.
    """CREATE OR REPLACE MACRO ws_instance_rank(id) AS
         CASE WHEN regexp_matches(id, '::FO::EN[0-9]+$') THEN 3 WHEN suffix(id, '::FO') THEN 2 ELSE 1 END""",
    """CREATE OR REPLACE MACRO ws_days(a, b) AS epoch(b) / 86400.0 - epoch(a) / 86400.0""",
    # Money as the platform writes it: an optional ISO currency code, digits grouped by commas in
    # threes (or not at all), at most two decimals, an optional share in brackets ("USD 324,324
    # (100%)"). Anything else, the continental "1.250.000,00" included, is not guessed at: NULL (the
    # text is kept beside it, and a check counts it). Exact DECIMAL, never a float.
    r"""CREATE OR REPLACE MACRO ws_money_re() AS
         '^\s*(?:([A-Za-z]{3})\s*)?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]{1,2})?\s*(?:\(\s*[0-9.]+\s*%\s*\))?\s*$'""",
    # An amount too large for its column (over 18 integer digits) is not an amount either: NULL, never
    # an error that would stop the load of every other row.
    """CREATE OR REPLACE MACRO ws_amount(s) AS CASE WHEN regexp_full_match(CAST(s AS VARCHAR), ws_money_re()) THEN
         TRY_CAST(replace(regexp_extract(CAST(s AS VARCHAR), ws_money_re(), 2), ',', '')
                  || regexp_extract(CAST(s AS VARCHAR), ws_money_re(), 3) AS DECIMAL(20, 2)) END""",
    """CREATE OR REPLACE MACRO ws_currency(s) AS
         nullif(upper(regexp_extract(CAST(s AS VARCHAR), ws_money_re(), 1)), '')""",
    # An amount in the currency ``ccy`` names: NULL when its own text names another one ("EUR 1,250"
    # with ``premiumCCY`` USD). Which of the two is right cannot be told, so neither is guessed.
    """CREATE OR REPLACE MACRO ws_amount_in(s, ccy) AS CASE
         WHEN ws_currency(s) IS NOT NULL AND nullif(upper(trim(CAST(ccy AS VARCHAR))), '') IS NOT NULL
              AND ws_currency(s) <> upper(trim(CAST(ccy AS VARCHAR))) THEN NULL
         ELSE ws_amount(s) END""",
    # A percentage: digits, at most eight decimals, an optional % sign. Exact DECIMAL; over ten integer
    # digits it does not fit: NULL.
    r"""CREATE OR REPLACE MACRO ws_pct(s) AS CASE
         WHEN regexp_full_match(CAST(s AS VARCHAR), '^\s*[0-9]+(\.[0-9]{1,8})?\s*%?\s*$')
         THEN TRY_CAST(regexp_extract(CAST(s AS VARCHAR), '[0-9]+(\.[0-9]+)?') AS DECIMAL(18, 8)) END""",
    # Text that says "no value yet" rather than a value that failed to parse.
    """CREATE OR REPLACE MACRO ws_not_given(s) AS
         s IS NULL OR upper(trim(CAST(s AS VARCHAR))) IN ('', 'TBA', 'TBC', 'N/A', 'NA', '-', 'NONE')""",
)


def install(conn: duckdb.DuckDBPyConnection) -> None:
    for macro in MACROS:
        conn.execute(macro)
