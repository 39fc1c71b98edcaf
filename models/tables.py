"""Warehouse tables. Every column carries a comment: it becomes ``COMMENT ON COLUMN`` in DuckDB,
so a BI tool or ``duckdb_columns()`` documents the warehouse without this file."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def col(name: str, type_: sa.types.TypeEngine, comment: str, **kw) -> sa.Column:
    return sa.Column(name, type_, comment=comment, **kw)


TS = sa.DateTime()  # DuckDB TIMESTAMP; every timestamp in the warehouse is UTC

# Small tables declare primary keys. The large ones (risks and their children) declare their key in
# ``info["key"]`` instead: the loaders replace rows by key and the asset checks prove uniqueness,
# because maintaining an ART index costs DuckDB more than the bulk load itself.

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
    col("risk_id", sa.String, "Risk document id: the root id, '::', then the instance (e.g. ::QR1, ::FO)"),
    col("root_id", sa.String, "Root risk id (IC + UUID): the text before the first '::'", nullable=False),
    col("rev", sa.String, "Document revision '<generation>-<32 hex>'"),
    col("rev_generation", sa.Integer, "The generation number of rev (how many times the document was saved)"),
    col("doc_type", sa.String, "Document type, RWPlacing for contracts"),
    col("umr", sa.String, "Unique Market Reference, stray spaces trimmed"),
    col("insured_name", sa.String, "Name of the insured (the risk's display name), trimmed"),
    col("status", sa.String, "Placing status as the platform sent it: QuotationRequest, FirmOrder, Signed, or a display form (Firm Order)"),
    col("contract_type", sa.String, "Contract type as the platform lists it, e.g. Open Market"),
    col("is_facility", sa.Boolean, "True for a facility agreement (line slip, binder)"),
    col("placing_broker_channel", sa.String, "Channel '<company>_<TEAM>' of the placing broker's team"),
    col("created_at", TS, "When the document was created (UTC)"),
    col("updated_at", TS, "When the document was last updated (UTC)"),
    col("raw", sa.JSON, "The whole object as the API returned it, unknown fields included"),
    col("loaded_at", TS, "When this row was last written by a sync (UTC)"),
    col("raw_md5", sa.String, "MD5 of raw's text (hex), NULL where the document's own id field is not risk_id: "
                              "how a delta load knows an element of the next answer is this document unchanged"),
    comment="One row per risk document visible to any synced organisation (GET /api/risks).",
    info={"key": ('risk_id',)},
)

risks_gone = sa.Table(
    "risks_gone",
    metadata,
    *[col(c.name, c.type, c.comment) for c in risks.columns],
    col("gone_at", TS, "The sync after which no synced organisation saw the document any more (UTC)"),
    col("gone_because", sa.String, "Why: it left every organisation's list, or its organisation left the login"),
    comment="Risk documents no synced organisation sees any more: the last row risks held, kept, never "
            "silently deleted. `risks` holds only what is current.",
    info={"key": ('risk_id', 'gone_at')},
)

risk_channels = sa.Table(
    "risk_channels",
    metadata,
    col("risk_id", sa.String, "The risk document (risks.risk_id)"),
    col("position", sa.Integer, "Position of the channel in the document's channels list (0 first)"),
    col("channel", sa.String, "Team channel '<company id lower case>_<TEAM ID>'"),
    col("company_id", sa.String, "Company part of the channel, upper case (matches organisations.company_id)"),
    col("team_id", sa.String, "Team part of the channel (ALL is an ordinary team id, 'All Risks')"),
    comment="The teams a risk document is shared with: the placing broker first, then every carrier team.",
    info={"key": ('risk_id', 'position')},
)

risk_visibility = sa.Table(
    "risk_visibility",
    metadata,
    col("risk_id", sa.String, "The risk document (risks.risk_id)"),
    col("user_id", sa.String, "MU id of the organisation membership that sees it"),
    col("synced_at", TS, "When that organisation's list was last synced (UTC)"),
    comment="Which organisations (MU ids) see which risk, as of each organisation's latest sync.",
    info={"key": ('risk_id', 'user_id')},
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

quarantine = sa.Table(
    "quarantine",
    metadata,
    col("user_id", sa.String, "MU id of the organisation whose answer held the document", primary_key=True),
    col("endpoint", sa.String, "API path of that answer, e.g. /risks or /mireport/prepare", primary_key=True),
    col("digest", sa.String, "MD5 of the document's text: the same document keeps its row from one answer to the next",
        primary_key=True),
    col("document_id", sa.String, "Its id as sent, if it had one (cut to 120 characters), whatever it looks like"),
    col("reason", sa.String, "Why it was not loaded: not an object, no id, an id outside the platform's grammar, "
                             "nested too deep, too large"),
    col("position", sa.Integer, "Its place in the latest answer that held it (1 first)"),
    col("path", sa.String, "That answer's file, relative to the raw directory (kept there as received)"),
    col("first_seen_at", TS, "First load that set it aside (UTC)"),
    col("last_seen_at", TS, "Latest load that set it aside (UTC)"),
    comment="Documents set aside: kept in the raw landing, not loaded, each reported by a check "
            "(risks_quarantine, mi_report_quarantine) while the platform still sends it.",
)

CHILD_TABLE_COLUMNS = (
    ("parent_id", sa.String, "Id of the parent row (e.g. risks.risk_id)"),
    ("position", sa.Integer, "Position in the list (0 first)"),
    ("value", sa.JSON, "The list element as JSON"),
)
"""Columns of the ``<parent>__<field>`` tables made for list-valued fields nobody declared."""

DEC = sa.Numeric(18, 8)  # line percentages: exact decimals parsed from the API's strings

contracts = sa.Table(
    "contracts",
    metadata,
    col("root_id", sa.String, "Root risk id (IC + UUID)", primary_key=True),
    col("risk_id", sa.String, "The document the contract was read from (the root's most advanced instance)"),
    col("rev", sa.String, "Revision of that document"),
    col("status", sa.String, "control.status: placing status of the contract"),
    col("insurance_type", sa.String, "control.insuranceType: Insurance or ReInsurance"),
    col("contract_type", sa.String, "control.contractType: class of business"),
    col("umr", sa.String, "control.umr, trimmed"),
    col("insured_name", sa.String, "control.insuredName, trimmed"),
    col("placing_broker_channel", sa.String, "control.placingBrokerChannel"),
    col("lead_underwriter_channel", sa.String, "control.leadUnderwriterChannel, once a lead is set"),
    col("lead_underwriter", sa.String, "control.leadUnderwriter: the lead's company and team name"),
    col("limit_summary", sa.String, "control.limitSummary, e.g. USD 20,000,000"),
    col("placement_type", sa.String, "control.placementType: FullContract, OffPlatform or Template"),
    col("is_facility", sa.Boolean, "control.isFacility: a facility agreement"),
    col("is_declaration", sa.Boolean, "True when control.associatedFacilityIDs is not empty"),
    col("inception_date", sa.Date, "From the contract's Inception_Date defined-data placeholder"),
    col("expiry_date", sa.Date, "From the contract's Expiry_Date defined-data placeholder"),
    col("created_at", TS, "createdAt of the document (UTC)"),
    col("updated_at", TS, "updatedAt of the document (UTC)"),
    col("raw", sa.JSON, "The whole RWPlacing document as returned by GET /api/risks/{riskID}"),
    col("fetched_at", TS, "When this contract and the root's line sets were fetched (UTC): of two fetches, the later wins"),
    comment="One contract (RWPlacing) per root risk: the control block typed, and the policy period.",
)

contracts_gone = sa.Table(
    "contracts_gone",
    metadata,
    *[col(c.name, c.type, c.comment) for c in contracts.columns],
    col("gone_at", TS, "The load after which no synced organisation saw the root any more (UTC)"),
    comment="Contracts of roots no synced organisation sees any more: the last row contracts held, kept "
            "(their line items and market lines stay in the raw landing). `contracts` holds only what is current.",
    info={"key": ('root_id', 'gone_at')},
)

contract_line_items = sa.Table(
    "contract_line_items",
    metadata,
    col("root_id", sa.String, "contracts.root_id"),
    col("position", sa.Integer, "Position of the line item in MRCContract.lineItems (0 first)"),
    col("section", sa.String, "mrcSection, e.g. RiskDetails, SecurityDetails"),
    col("heading", sa.String, "mrcHeading, the enumerated MRC heading (e.g. Period, Premium)"),
    col("original_heading", sa.String, "The heading as written in the contract"),
    col("text", sa.String, "The item's text: its elements joined by new lines, placeholders as [[name]]"),
    comment="The MRC contract's line items, in order.",
    info={"key": ('root_id', 'position')},
)

contract_line_items__placeholders = sa.Table(
    "contract_line_items__placeholders",
    metadata,
    col("root_id", sa.String, "contracts.root_id"),
    col("item_position", sa.Integer, "contract_line_items.position"),
    col("position", sa.Integer, "Position of the placeholder in the item (0 first)"),
    col("name", sa.String, "Placeholder name, e.g. DefinedData0"),
    col("type", sa.String, "phType, e.g. DefinedData"),
    col("tags", sa.String, "Defined-data tags without the Page: entry, comma separated (e.g. Inception_Date)"),
    col("value", sa.String, "The placeholder's value as written"),
    comment="Defined-data placeholders of each line item (dates, amounts, names).",
    info={"key": ('root_id', 'item_position', 'position')},
)

market_lines = sa.Table(
    "market_lines",
    metadata,
    col("line_set_id", sa.String, "Id of the written (::WRLS) or signed (::SILS) line set"),
    col("line_position", sa.Integer, "Position of the line in the set"),
    col("impression_position", sa.Integer, "Position of the impression (stamp) in the line"),
    col("root_id", sa.String, "Root risk id"),
    col("set_type", sa.String, "written or signed"),
    col("carrier_channel", sa.String, "stamperChannel: the carrier team that put the line down"),
    col("carrier_company_id", sa.String, "Company part of carrier_channel, upper case"),
    col("role", sa.String, "The line's role as the platform gives it (leader, agreementParty, ...)"),
    col("is_leader", sa.Boolean, "True for the lead line"),
    col("market", sa.String, "Stamp's bureau market, e.g. Lloyd's or Company"),
    col("syndicate_number", sa.String, "Stamp's category number (Lloyd's syndicate number or company code)"),
    col("pseudonym", sa.String, "Lloyd's syndicate pseudonym (three letters), where given"),
    col("written_pct", DEC, "Written line, % of whole, exact decimal from writtenLinePercentageString"),
    col("signed_pct", DEC, "Signed line, % of whole, exact decimal from signedLinePercentageString (signed sets)"),
    col("written_raw", sa.String, "writtenLinePercentageString as sent (written_pct is NULL where it is not a plain "
                                  "number: a check counts those)"),
    col("signed_raw", sa.String, "signedLinePercentageString as sent"),
    col("risk_codes", sa.String, "Lloyd's risk codes, comma separated"),
    col("year_of_account", sa.Integer, "Year of account"),
    col("stamped_at", TS, "When the line was put down (UTC)"),
    comment="One row per impression of every written and signed line set (GET /api/lines/{rootID}/combinedSets).",
    info={"key": ('line_set_id', 'line_position', 'impression_position')},
)

facility_links = sa.Table(
    "facility_links",
    metadata,
    col("root_id", sa.String, "The declaration's root risk id", primary_key=True),
    col("facility_root_id", sa.String, "A facility it is attached to (control.associatedFacilityIDs)", primary_key=True),
    comment="Declarations and the facilities they are declared to.",
)

detail_loads = sa.Table(
    "detail_loads",
    metadata,
    col("path", sa.String, "Landed detail file (relative to the raw directory)", primary_key=True),
    col("user_id", sa.String, "MU id of the organisation whose run fetched it"),
    col("loaded_at", TS, "When it was committed to these tables (UTC)"),
    col("roots", sa.Integer, "Roots in the file"),
    col("failed", sa.Integer, "Roots whose detail calls failed after retries (fetched again next run)"),
    comment="Which landed detail files are in the warehouse: the load side of the incremental state.",
)

detail_failures = sa.Table(
    "detail_failures",
    metadata,
    col("root_id", sa.String, "Root risk whose detail calls failed", primary_key=True),
    col("user_id", sa.String, "MU id of the organisation whose run tried", primary_key=True),
    col("error", sa.String, "The error, as the client reported it"),
    col("failed_at", TS, "When (UTC)"),
    comment="Roots whose contract or lines could not be fetched in the latest run; cleared when fetched.",
)

risk_history = sa.Table(
    "risk_history",
    metadata,
    col("risk_id", sa.String, "risks.risk_id"),
    col("rev", sa.String, "A revision of the document"),
    col("root_id", sa.String, "Root risk id"),
    col("rev_generation", sa.Integer, "Generation number of rev"),
    col("status", sa.String, "Status in that revision"),
    col("umr", sa.String, "UMR in that revision"),
    col("valid_from", TS, "updatedAt of the revision (UTC): when it took effect"),
    col("valid_to", TS, "When the next revision took effect or the document disappeared (NULL: current)"),
    col("first_seen_at", TS, "The sync that first saw this revision (UTC)"),
    comment="Every revision of every risk document seen by a sync, with validity intervals.",
    info={"key": ('risk_id', 'rev')},
)

MONEY = sa.Numeric(20, 2)  # amounts: exact decimals in their own currency, never floats
PCT = sa.Numeric(18, 8)  # percentages, exact

mi_report = sa.Table(
    "mi_report",
    metadata,
    col("user_id", sa.String, "MU id of the organisation whose MI report the row is (its view of the placement)"),
    col("root_id", sa.String, "Root risk id (rootID)"),
    col("mi_id", sa.String, "_id of the MI row: '<root>::MIREP::<team channel>'"),
    col("umr", sa.String, "umr, trimmed"),
    col("insured", sa.String, "insured (the risk's title), trimmed"),
    col("status", sa.String, "status of the placement, e.g. Signed"),
    col("contract_type", sa.String, "contractType: the placement type (Open Market, Facilities, Declarations), not the class of business"),
    col("broker_company_id", sa.String, "brokerCompanyID"),
    col("broker_company", sa.String, "brokerCompanyName"),
    col("broker_team_id", sa.String, "brokerTeamID"),
    col("broker_team", sa.String, "brokerTeam"),
    col("period_from", sa.Date, "periodFrom ('17 March 2021') as a date: the policy's inception"),
    col("period_to", sa.Date, "periodTo as a date: the policy's expiry"),
    col("limit_currency", sa.String, "Currency of the limit (ISO code from 'USD 3,242,342')"),
    col("limit_amount", MONEY, "The limit, exact (NULL when the text does not parse: see limit_raw)"),
    col("limit_raw", sa.String, "limit as sent"),
    col("premium_currency", sa.String, "premiumCCY (else the code in premiumAll)"),
    col("premium_amount", MONEY, "100% gross premium, exact, in premium_currency (NULL when it does not parse)"),
    col("premium_raw", sa.String, "premium as sent"),
    col("premium_all_raw", sa.String, "premiumAll as sent, e.g. 'USD 324,324  (100%)'"),
    col("brokerage_pct", PCT, "brokerage: total brokerage, % of the premium (NULL when it does not parse)"),
    col("brokerage_raw", sa.String, "brokerage as sent, e.g. '29.75%'"),
    col("risk_created_at", TS, "riskCreatedAt (UTC)"),
    col("risk_updated_at", TS, "riskUpdatedAt (UTC): the placement's last change the row reflects"),
    col("data_version", sa.Integer, "dataVersion of the MI row format"),
    col("raw", sa.JSON, "The whole row as prepared"),
    col("landed_at", TS, "When the answer holding this row was landed (UTC): of two answers, the later wins"),
    comment="The MI report (POST $ROOT/mireport/prepare): one row per placement per organisation that sees "
            "it, money typed. Amounts are in their own currency; never add across currencies.",
    info={"key": ("user_id", "root_id")},
)

mi_report_carriers = sa.Table(
    "mi_report_carriers",
    metadata,
    col("user_id", sa.String, "mi_report.user_id"),
    col("root_id", sa.String, "mi_report.root_id"),
    col("carrier_position", sa.Integer, "Position in underwriterDetails (0 first)"),
    col("content_position", sa.Integer, "Position in the carrier's content (0 first; NULL: no line yet)"),
    col("impression_position", sa.Integer, "Position in the content's impressions (0 first; NULL: no line yet)"),
    col("carrier_company_id", sa.String, "carrierCompanyID"),
    col("carrier", sa.String, "carrierName"),
    col("carrier_team_id", sa.String, "carrierTeamID"),
    col("carrier_team", sa.String, "carrierTeamName"),
    col("underwriter", sa.String, "underwriterName"),
    col("risk_id", sa.String, "riskID: the instance the carrier's details are from"),
    col("is_off_platform", sa.Boolean, "isOffPlatform"),
    col("is_lead", sa.Boolean, "leadUWFlag = Yes"),
    col("written_pct", PCT, "writtenLinePerc: written line, % of whole, exact"),
    col("signed_pct", PCT, "signedLinePerc: signed line, % of whole, exact (NULL until signed)"),
    col("written_raw", sa.String, "writtenLinePerc as sent"),
    col("signed_raw", sa.String, "signedLinePerc as sent"),
    col("stamp", sa.String, "stamp as sent: '<name>,<market>,<number>'"),
    col("stamp_name", sa.String, "The stamp's name part, e.g. Lloyd's Underwriter Syndicate No. 1231 PAL"),
    col("market", sa.String, "The stamp's market part, e.g. Lloyd's or Company"),
    col("syndicate", sa.String, "The stamp's number part: the Lloyd's syndicate number or company code"),
    col("reference", sa.String, "ref: the carrier's reference"),
    col("written_line_stamped_at", TS, "writtenLineStampedAt (UTC)"),
    col("quotation_request_at", TS, "quotationRequest: when the carrier was asked to quote (UTC)"),
    col("quoted_at", TS, "quotedByUnderwriter (UTC)"),
    col("firm_order_at", TS, "firmOrder (UTC)"),
    col("signed_at", TS, "signed (UTC)"),
    comment="Each carrier team's line on a placement in the MI report (underwriterDetails × content × "
            "impressions): a carrier with no line yet has one row with NULL positions and percentages.",
    info={"key": ("user_id", "root_id", "carrier_position", "content_position", "impression_position")},
)

mi_report_loads = sa.Table(
    "mi_report_loads",
    metadata,
    col("path", sa.String, "Landed MI answer (relative to the raw directory)", primary_key=True),
    col("user_id", sa.String, "MU id of the organisation it was prepared for"),
    col("loaded_at", TS, "When it was committed (UTC)"),
    col("rows", sa.Integer, "Rows in the answer"),
    comment="Which landed MI report answers are in the warehouse.",
)

defined_data = sa.Table(
    "defined_data",
    metadata,
    col("root_id", sa.String, "Root risk id"),
    col("risk_id", sa.String, "The document the values were read from (metadata.documentID)"),
    col("position", sa.Integer, "Position in definedData (0 first)"),
    col("tag", sa.String, "The data tag, e.g. Premium_Amount, Inception_Date, Brokerage_%"),
    col("value", sa.String, "The value as written in the contract"),
    col("heading", sa.String, "mrcHeading of the line item holding it"),
    col("original_heading", sa.String, "originalHeading: the heading as written"),
    col("section", sa.String, "section, e.g. RiskDetails"),
    col("line_item_index", sa.Integer, "lineItemIndex: the line item's index in the contract"),
    col("name", sa.String, "Placeholder name, e.g. DefinedData0"),
    col("parent_id", sa.String, "parentID: groups values of one section or table row"),
    col("currency", sa.String, "For *_Amount tags: the currency code of the value"),
    col("amount", MONEY, "For *_Amount tags: the amount, exact (NULL when it does not parse)"),
    col("percentage", PCT, "For *_% and *_Percentage tags: the percentage, exact"),
    col("date_value", sa.Date, "For *_Date tags: the date"),
    comment="The contract's Defined Data (GET /api/v23.09/data/{riskID}), one row per tagged value, with the "
            "money, percentage and date tags typed.",
    info={"key": ("root_id", "position")},
)
