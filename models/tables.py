"""Warehouse tables. Every column carries a comment: it becomes ``COMMENT ON COLUMN`` in DuckDB,
so a BI tool or ``duckdb_columns()`` documents the warehouse without this file."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def col(name: str, type_: sa.types.TypeEngine, comment: str, **kw) -> sa.Column:
    return sa.Column(name, type_, comment=comment, **kw)


TS = sa.DateTime()  # DuckDB TIMESTAMP; every timestamp in the warehouse is UTC

raw_responses = sa.Table(
    "raw_responses",
    metadata,
    col("user_id", sa.String, "MU id the request was made as ('' for calls made without UserID)", primary_key=True),
    col("endpoint", sa.String, "API path requested, e.g. /risks or /shared/corporate", primary_key=True),
    col("fetched_at", TS, "When the response was received (UTC)", primary_key=True),
    col("sha256", sa.String, "SHA-256 of the body exactly as received"),
    col("bytes", sa.BigInteger, "Size of the body in bytes"),
    col("items", sa.BigInteger, "Elements of the JSON array (1 for an object)"),
    col("path", sa.String, "Where the body is kept, relative to the raw directory"),
    comment="Every API response landed losslessly on disk: the tables can be rebuilt from these without the API.",
)

risks = sa.Table(
    "risks",
    metadata,
    col("risk_id", sa.String, "Risk document id: the root id, '::', then the instance (e.g. ::QR1, ::FO)", primary_key=True),
    col("root_id", sa.String, "Root risk id (IC + UUID): the text before the first '::'", nullable=False),
    col("rev", sa.String, "Document revision '<generation>-<32 hex>'"),
    col("rev_generation", sa.Integer, "The generation number of rev (how many times the document was saved)"),
    col("doc_type", sa.String, "Document type, RWPlacing for contracts"),
    col("umr", sa.String, "Unique Market Reference, stray spaces trimmed"),
    col("insured_name", sa.String, "Name of the insured (the risk's display name), trimmed"),
    col("status", sa.String, "Placing status, e.g. QuotationRequest, FirmOrder, Signed"),
    col("contract_type", sa.String, "Contract type as the platform lists it, e.g. Open Market"),
    col("is_facility", sa.Boolean, "True for a facility agreement (line slip, binder)"),
    col("placing_broker_channel", sa.String, "Channel '<company>_<TEAM>' of the placing broker's team"),
    col("created_at", TS, "When the document was created (UTC)"),
    col("updated_at", TS, "When the document was last updated (UTC)"),
    col("raw", sa.JSON, "The whole object as the API returned it, unknown fields included"),
    col("loaded_at", TS, "When this row was last written by a sync (UTC)"),
    comment="One row per risk document visible to any synced organisation (GET /api/risks).",
)

risk_channels = sa.Table(
    "risk_channels",
    metadata,
    col("risk_id", sa.String, "The risk document (risks.risk_id)", primary_key=True),
    col("position", sa.Integer, "Position of the channel in the document's channels list (0 first)", primary_key=True),
    col("channel", sa.String, "Team channel '<company id lower case>_<TEAM ID>'"),
    col("company_id", sa.String, "Company part of the channel, upper case (matches organisations.company_id)"),
    col("team_id", sa.String, "Team part of the channel (ALL is an ordinary team id, 'All Risks')"),
    comment="The teams a risk document is shared with: the placing broker first, then every carrier team.",
)

risk_visibility = sa.Table(
    "risk_visibility",
    metadata,
    col("risk_id", sa.String, "The risk document (risks.risk_id)", primary_key=True),
    col("user_id", sa.String, "MU id of the organisation membership that sees it", primary_key=True),
    col("synced_at", TS, "When that organisation's list was last synced (UTC)"),
    comment="Which organisations (MU ids) see which risk, as of each organisation's latest sync.",
)

organisations = sa.Table(
    "organisations",
    metadata,
    col("company_id", sa.String, "Company id, upper case, e.g. GAILBKR", primary_key=True),
    col("name", sa.String, "Company name"),
    col("role", sa.String, "broker or underwriter"),
    col("is_offline", sa.Boolean, "True for an off-platform placeholder organisation"),
    col("is_test_only", sa.Boolean, "True for a test account"),
    col("created_at", TS, "When the company was created (UTC)"),
    col("updated_at", TS, "When its details last changed (UTC)"),
    col("raw", sa.JSON, "The company object as returned by /api/shared/corporate"),
    comment="Every company on the platform (GET /api/shared/corporate).",
)

teams = sa.Table(
    "teams",
    metadata,
    col("channel", sa.String, "Team channel '<company id lower case>_<TEAM ID>'", primary_key=True),
    col("company_id", sa.String, "Owning company (organisations.company_id)"),
    col("team_id", sa.String, "Team id, upper case"),
    col("name", sa.String, "Team name, usually the class of business"),
    col("is_inactive", sa.Boolean, "True when the team was marked inactive"),
    comment="Teams of every company; risk_channels.channel refers to these.",
)

users = sa.Table(
    "users",
    metadata,
    col("user_id", sa.String, "MU id: one user's membership of one company (permanent)", primary_key=True),
    col("name", sa.String, "The user's name (emails are removed by the platform)"),
    col("company_id", sa.String, "The company of this membership"),
    col("current_state", sa.String, "Live, Draft, Suspended, ..."),
    comment="Platform users, one row per company membership (a SUMO user has several).",
)

users__teams = sa.Table(
    "users__teams",
    metadata,
    col("user_id", sa.String, "users.user_id", primary_key=True),
    col("position", sa.Integer, "Position in the member's teams list", primary_key=True),
    col("channel", sa.String, "Team channel the user belongs to"),
    comment="Team memberships of each user (the members[].teams list).",
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    col("user_id", sa.String, "MU id of the organisation (the Dagster partition key)", primary_key=True),
    col("company_id", sa.String, "Company of the membership, when known"),
    col("synced_at", TS, "When its risk list was last committed (UTC)"),
    col("api_items", sa.BigInteger, "Elements in the last /api/risks answer, duplicates included"),
    col("distinct_risks", sa.BigInteger, "Distinct risk ids in that answer"),
    col("sha256", sa.String, "Hash of the raw answer that was loaded"),
    comment="Per-organisation sync state: advances only in the transaction that commits the data it covers.",
)

schema_drift = sa.Table(
    "schema_drift",
    metadata,
    col("endpoint", sa.String, "API path whose objects carried the field", primary_key=True),
    col("field", sa.String, "Field name as the API spelled it", primary_key=True),
    col("kind", sa.String, "new_field (not in the schema) or type_change (known field, unexpected JSON type)",
        primary_key=True),
    col("json_types", sa.String, "JSON types seen for the field, comma separated"),
    col("first_seen_at", TS, "First sync that saw it (UTC)"),
    col("last_seen_at", TS, "Latest sync that saw it (UTC)"),
    col("child_table", sa.String, "For a new list-valued field: the <parent>__<field> table that holds it"),
    comment="Fields the pipeline does not know, kept in raw and reported here; never dropped.",
)

CHILD_TABLE_COLUMNS = (
    ("parent_id", sa.String, "Id of the parent row (e.g. risks.risk_id)"),
    ("position", sa.Integer, "Position in the list (0 first)"),
    ("value", sa.JSON, "The list element as JSON"),
)
"""Columns of the ``<parent>__<field>`` tables made for list-valued fields nobody declared."""
