"""Marts: tables shaped for BI, rebuilt from the base tables after every sync.

Every mart is per organisation: ``company_id`` is the synced organisation (the MU id's company)
whose book the row belongs to. A placement shared with three synced organisations counts once in
each, so filter on one organisation, or sum knowingly across several.

A *placement* is a root risk (``root_id``): its quote requests, firm order and endorsements are
instance documents of one root. Its status is the status of its most advanced instance: an
endorsement (``…::FO::…``) over the firm order (``…::FO``) over quote requests.
"""

from __future__ import annotations

import sqlalchemy as sa

from models.tables import DEC, MONEY, PCT, TS, col, metadata

ORG_COLUMNS = (
    ("company_id", sa.String, "Synced organisation whose book this row belongs to (organisations.company_id)"),
    ("organisation", sa.String, "Its name (organisations.name; the company id when the name is unknown)"),
)


def _org() -> list[sa.Column]:
    return [col(n, t, c) for n, t, c in ORG_COLUMNS]


mart_status_monthly = sa.Table(
    "mart_status_monthly",
    metadata,
    col("month", sa.Date, "First day of the month; counts are as at the end of that month (now, for this month)"),
    *_org(),
    col("status", sa.String, "Placing status of the placement at that time, from its revisions (risk_history), in one form (FirmOrder, never Firm Order)"),
    col("contract_type", sa.String, "Contract type as the risk list gives it (e.g. Non-Bulking Line Slip), not the MI report's placement type"),
    col("placements", sa.BigInteger, "Placements in that status at that time"),
    comment="Placements by status, contract type and organisation at the end of every month, from the revisions "
            "syncs have seen (risk_history). A placement counts from its first revision a sync saw.",
    info={"key": ("month", "company_id", "status", "contract_type")},
)

mart_placements = sa.Table(
    "mart_placements",
    metadata,
    col("root_id", sa.String, "Root risk id"),
    *_org(),
    col("umr", sa.String, "Unique Market Reference"),
    col("insured_name", sa.String, "Insured"),
    col("contract_type", sa.String, "Contract type as the risk list gives it (e.g. Non-Bulking Line Slip), not the MI report's placement type"),
    col("status", sa.String, "Current status (of the most advanced instance), in one form (FirmOrder, never Firm Order)"),
    col("went_to_market", sa.Boolean, "True once any revision left NotFinalised / MarketedOnly / Template"),
    col("requested_at", TS, "Quotation requested: createdAt of the first instance, for placements that went to market"),
    col("firm_order_at", TS, "Firm order: createdAt of the ::FO instance, else the first revision in FirmOrder or later"),
    col("signed_at", TS, "Signed: the first signed line's stamp, else the first revision in Signed or an endorsement"),
    col("days_to_firm_order", sa.Float, "Days from requested_at to firm_order_at"),
    col("days_firm_order_to_signed", sa.Float, "Days from firm_order_at to signed_at"),
    col("days_to_signed", sa.Float, "Days from requested_at to signed_at"),
    comment="One row per placement and organisation: its placing milestones (the funnel's detail).",
    info={"key": ("root_id", "company_id")},
)

mart_placing_funnel = sa.Table(
    "mart_placing_funnel",
    metadata,
    col("month", sa.Date, "Month the quotation was requested (first day)"),
    *_org(),
    col("contract_type", sa.String, "Contract type as the risk list gives it (e.g. Non-Bulking Line Slip), not the MI report's placement type"),
    col("quotation_requests", sa.BigInteger, "Placements that went to market that month"),
    col("firm_orders", sa.BigInteger, "Of those, placements that reached a firm order"),
    col("signed", sa.BigInteger, "Of those, placements that were signed"),
    col("median_days_to_firm_order", sa.Float, "Median days from quotation request to firm order"),
    col("median_days_firm_order_to_signed", sa.Float, "Median days from firm order to signed"),
    col("median_days_to_signed", sa.Float, "Median days from quotation request to signed"),
    comment="The placing funnel: quotation requests, firm orders and signings by month of request, with median "
            "days between the steps (mart_placements has the placements behind each figure).",
    info={"key": ("month", "company_id", "contract_type")},
)

mart_carrier_participation = sa.Table(
    "mart_carrier_participation",
    metadata,
    col("inception_month", sa.Date, "Month of the policy's inception (first day; NULL when the contract has none)"),
    *_org(),
    col("carrier_company_id", sa.String, "Carrier company that wrote the line"),
    col("carrier", sa.String, "Carrier name"),
    col("lead_company_id", sa.String, "Company of the placement's lead underwriter (NULL before a lead is set)"),
    col("placements", sa.BigInteger, "Placements the carrier has a written line on"),
    col("lead_lines", sa.BigInteger, "Of those, placements where the carrier's written line is the lead line"),
    col("signed_placements", sa.BigInteger, "Of those, placements with a signed line (the count behind avg_signed_pct)"),
    col("written_pct_total", DEC, "Sum of written lines over the placements, % points: a numerator (÷ placements), not a share"),
    col("signed_pct_total", DEC, "Sum of signed lines, % points: a numerator (÷ signed_placements), not a share"),
    col("avg_written_pct", DEC, "Average written line, %"),
    col("avg_signed_pct", DEC, "Average signed line, % (NULL when nothing is signed)"),
    comment="Carrier participation: written and signed shares per carrier and per lead, by month of inception.",
    info={"key": ("inception_month", "company_id", "carrier_company_id", "lead_company_id")},
)

mart_open_items = sa.Table(
    "mart_open_items",
    metadata,
    col("root_id", sa.String, "Root risk id"),
    *_org(),
    col("umr", sa.String, "Unique Market Reference"),
    col("insured_name", sa.String, "Insured"),
    col("contract_type", sa.String, "Contract type as the risk list gives it (e.g. Non-Bulking Line Slip), not the MI report's placement type"),
    col("status", sa.String, "Current status: a quotation state or FirmOrder (one form, never Firm Order)"),
    col("stage", sa.String, "quotation or firm order"),
    col("placing_broker_channel", sa.String, "Placing broker's team"),
    col("status_since", TS, "When the placement entered its current status (first revision seen in it)"),
    col("days_in_status", sa.Float, "Days from status_since to as_of"),
    col("as_of", TS, "When the mart was built (UTC)"),
    comment="Open items: placements still in a quotation or firm-order state for longer than the configured "
            "number of days (WHITESPACE_OPEN_ITEM_DAYS, 30 by default) when the mart was built.",
    info={"key": ("root_id", "company_id")},
)

SHARE = sa.Numeric(38, 12)
"""A share of an amount (amount × percentage): exact, so that carriers' shares add up to the whole."""

mart_carrier_shares = sa.Table(
    "mart_carrier_shares",
    metadata,
    col("root_id", sa.String, "Root risk id"),
    *_org(),
    col("umr", sa.String, "Unique Market Reference"),
    col("insured", sa.String, "Insured"),
    col("contract_type", sa.String, "Placement type as the MI report gives it (Open Market, Facilities, Declarations)"),
    col("status", sa.String, "Placing status in the MI report, in one form (FirmOrder, never Firm Order)"),
    col("period_from", sa.Date, "Inception of the policy period"),
    col("currency", sa.String, "Currency of the premium and of every amount in this row"),
    col("premium", MONEY, "100% gross premium of the placement (NULL when the platform's text did not parse)"),
    col("brokerage_pct", PCT, "Total brokerage, % of the premium"),
    col("carrier_company_id", sa.String, "Carrier company"),
    col("carrier", sa.String, "Carrier name"),
    col("is_lead", sa.Boolean, "The carrier leads the placement"),
    col("written_pct", PCT, "Its written line, % of whole (its impressions added)"),
    col("signed_pct", PCT, "Its signed line, % of whole (NULL until signed)"),
    col("written_premium", SHARE, "premium × written line: the carrier's share of the premium as written"),
    col("signed_premium", SHARE, "premium × signed line: the carrier's share of the premium as signed"),
    col("signed_brokerage", SHARE, "signed_premium × brokerage %: the brokerage on the carrier's signed share"),
    comment="Each carrier's line on each placement an organisation sees, with its premium share, from the MI "
            "report. For a fully signed placement the signed shares add up to the premium (a check proves it).",
    info={"key": ("root_id", "company_id", "carrier_company_id")},
)

mart_premium_monthly = sa.Table(
    "mart_premium_monthly",
    metadata,
    col("month", sa.Date, "Month of inception (period_from, first day; NULL when the period did not parse)"),
    *_org(),
    col("contract_type", sa.String, "Placement type as the MI report gives it (Open Market, Facilities, Declarations)"),
    col("carrier_company_id", sa.String, "Carrier company"),
    col("carrier", sa.String, "Carrier name"),
    col("currency", sa.String, "Currency of every amount in the row: amounts are never added across currencies"),
    col("placements", sa.BigInteger, "Placements the carrier has a line on"),
    col("written_premium", SHARE, "Sum of the carrier's written premium shares"),
    col("signed_premium", SHARE, "Sum of its signed premium shares (signed placements)"),
    col("signed_brokerage", SHARE, "Brokerage on those signed shares"),
    comment="Gross written premium and brokerage by month of inception, organisation, class, carrier and "
            "currency: the carriers' shares from mart_carrier_shares.",
    info={"key": ("month", "company_id", "contract_type", "carrier_company_id", "currency")},
)

mart_book_premium = sa.Table(
    "mart_book_premium",
    metadata,
    col("month", sa.Date, "Month of inception (period_from, first day)"),
    *_org(),
    col("contract_type", sa.String, "Placement type as the MI report gives it (Open Market, Facilities, Declarations)"),
    col("currency", sa.String, "Currency of every amount in the row"),
    col("placements", sa.BigInteger, "Placements with an MI row"),
    col("premium", MONEY, "Sum of their 100% premiums (placements whose premium parsed)"),
    col("brokerage", SHARE, "Sum of premium × brokerage %"),
    col("bound_placements", sa.BigInteger, "Of those, placements at firm order, signed or endorsed"),
    col("bound_premium", MONEY, "Their 100% premium"),
    col("unparsed_premiums", sa.BigInteger, "Placements whose premium text did not parse (not in the sums)"),
    comment="The book's 100% premium and brokerage by month of inception, organisation, class and currency.",
    info={"key": ("month", "company_id", "contract_type", "currency")},
)

mart_placing_times = sa.Table(
    "mart_placing_times",
    metadata,
    col("root_id", sa.String, "Root risk id"),
    *_org(),
    col("contract_type", sa.String, "Placement type as the MI report gives it (Open Market, Facilities, Declarations)"),
    col("status", sa.String, "Placing status in the MI report, in one form (FirmOrder, never Firm Order)"),
    col("quotation_requested_at", TS, "The platform's time of the first quotation request to a carrier"),
    col("quoted_at", TS, "The first quote"),
    col("firm_order_at", TS, "The firm order"),
    col("signed_at", TS, "Signing"),
    col("days_to_quote", sa.Float, "Days from quotation request to the first quote"),
    col("days_to_firm_order", sa.Float, "Days from quotation request to firm order"),
    col("days_firm_order_to_signed", sa.Float, "Days from firm order to signed"),
    col("days_to_signed", sa.Float, "Days from quotation request to signed"),
    comment="Time from quote request to firm order to signed, from the platform's own step times (the MI "
            "report's per-carrier milestones), not from when a sync saw a change.",
    info={"key": ("root_id", "company_id")},
)

marts_state = sa.Table(
    "marts_state",
    metadata,
    col("built_at", TS, "When the marts were last built (UTC): their as_of"),
    col("loads", sa.String, "A digest of the loads they were built from (raw_responses, sync_state, detail_loads, "
                            "mi_report_loads): while the warehouse's own still matches it, no load came after them"),
    col("open_item_days", sa.Integer, "The open-item age mart_open_items was built with"),
    comment="What the marts in this warehouse were built from, written once their Parquet files are: a sync "
            "rebuilds the marts unless this row matches the warehouse's loads, so marts older than a load (a "
            "restored backup, a load another Dagster instance ran, a departed organisation) are never kept.",
)

MARTS = (mart_status_monthly, mart_placements, mart_placing_funnel, mart_carrier_participation, mart_open_items,
         mart_carrier_shares, mart_premium_monthly, mart_book_premium, mart_placing_times)
MONEY_MARTS = (mart_carrier_shares, mart_premium_monthly, mart_book_premium)
"""Marts holding amounts: each has a currency column in its key (or per row), so no sum crosses currencies."""
