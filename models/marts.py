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

from models.tables import DEC, TS, col, metadata

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
    col("status", sa.String, "Placing status of the placement at that time, from its revisions (risk_history)"),
    col("contract_type", sa.String, "Contract type, e.g. Open Market"),
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
    col("contract_type", sa.String, "Contract type"),
    col("status", sa.String, "Current status (of the most advanced instance)"),
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
    col("contract_type", sa.String, "Contract type"),
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
    col("written_pct_total", DEC, "Sum of written lines, % of whole"),
    col("signed_pct_total", DEC, "Sum of signed lines, % of whole (signed placements only)"),
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
    col("contract_type", sa.String, "Contract type"),
    col("status", sa.String, "Current status: a quotation state or FirmOrder"),
    col("stage", sa.String, "quotation or firm order"),
    col("placing_broker_channel", sa.String, "Placing broker's team"),
    col("status_since", TS, "When the placement entered its current status (first revision seen in it)"),
    col("days_in_status", sa.Float, "Days from status_since to as_of"),
    col("as_of", TS, "When the mart was built (UTC)"),
    comment="Open items: placements still in a quotation or firm-order state for longer than the configured "
            "number of days (WHITESPACE_OPEN_ITEM_DAYS, 30 by default) when the mart was built.",
    info={"key": ("root_id", "company_id")},
)

MARTS = (mart_status_monthly, mart_placements, mart_placing_funnel, mart_carrier_participation, mart_open_items)
