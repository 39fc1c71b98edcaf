"""The sandbox's JSON documents, shaped as the platform writes them (see the OpenAPI spec)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import random
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.world import (
    CARRIER_TEAM,
    MEMBERSHIP_BY_MU,
    ORG_BY_ID,
    ORGANISATIONS,
    RISK_CODES,
    USERS,
    Root,
    World,
    mix,
    stamp,
)

WRITTEN_SHARES = (
    ("35", "40", "44.0272", "50", "55", "60", "62.5", "75"),  # two carriers
    ("20", "25", "27.5", "33.3333", "35", "40", "44.0272", "50"),  # three
    ("5", "7.5", "10", "12.5", "15", "17.5", "20", "25"),  # four or more (the scale tests' extra carriers)
)
STATUS_BY_SUFFIX_STAGE = {"QR1": "QuotationRequest", "QR2": "QuotationRequest"}


def _instance_status(root: Root, suffix: str) -> str:
    """Quote requests keep the status they had when the firm order was made from them."""
    if suffix.startswith("QR") and "FO" in root.suffixes():
        return "QuotedByUnderwriter"
    return root.status


def risk_row(root: Root, suffix: str, drift: str = "", status_display: bool = False) -> dict[str, Any]:
    """One row of ``GET /api/risks``: the real mixed casing (Pascal and camel case). ``status_display``:
    ``Status`` in its display form ("Firm Order"), the revision unchanged."""
    doc_id = f"{root.root_id}::{suffix}"
    row: dict[str, Any] = {
        "ContractType": root.contract_type,
        "InsuredName": root.insured_name,
        "IsFacility": root.is_facility,
        "Status": display_form(_instance_status(root, suffix)) if status_display else _instance_status(root, suffix),
        "channels": root.channels,
        "createdAt": stamp(root.created_for(suffix)),
        "id": doc_id,
        "placingBrokerChannel": root.placing_broker_channel,
        "rev": root.rev(doc_id),
        "type": "RWPlacing",
        "umr": root.umr,
        # Some payloads carry ISO 8601, most the space-separated form: both occur.
        "updatedAt": stamp(root.updated_at, iso=root.index % 4 == 0),
    }
    if drift == "added":
        row["RiskRegion"] = ("EMEA", "APAC", "AMER")[root.index % 3]
        row["labels"] = [f"label-{root.index % 5}", "renewal"][: 1 + root.index % 2]
    elif drift == "changed_type":
        row["IsFacility"] = "true" if root.is_facility else "false"
    elif drift == "hostile":
        hostile(row, root.index)
    return row


# Control characters and escapes, but no NUL: a NUL is set aside on either engine, the nul_text fault sends it.
HOSTILE_NAME = "Robert'); DROP TABLE risks;-- \"quoted\" \u00fc\u4e2d\U0001F600\u202e \x07\x1b[31m"


def hostile(row: dict[str, Any], index: int) -> None:
    """Values a careless loader chokes on: long strings, SQL and unicode tricks, nulls, swapped types."""
    kind = index % 5
    if kind == 0:
        row["InsuredName"] = HOSTILE_NAME + "x" * 20_000
    elif kind == 1:
        row["Status"] = None
        row["ContractType"] = None
    elif kind == 2:
        row["umr"] = 12345678  # a number where a string was
        row["IsFacility"] = "0"  # a string where a boolean was
    elif kind == 3:
        row["createdAt"] = int(1_700_000_000 + index)  # epoch seconds
        row["channels"] = []


def carrier_copies(root: Root, company_id: str) -> list[str]:
    """A carrier's own instances of a placement it writes: its copy of the firm order
    (``FO::<COMPANY>::<TEAM>``) once there is one, and of the signed risk (``SIGNED::…``) once signed.
    Only that carrier's list holds them."""
    if company_id not in root.carriers or "FO" not in root.suffixes():
        return []
    team = CARRIER_TEAM[company_id]
    return [f"FO::{company_id}::{team}"] + ([f"SIGNED::{company_id}::{team}"] if root.is_signed() else [])


def risk_rows(world: World, company_id: str, drift: str = "", status_display: bool = False):
    for i in world.root_indexes(company_id):
        root = world.root(i)
        for suffix in root.suffixes() + carrier_copies(root, company_id):
            yield risk_row(root, suffix, drift, status_display)


def display_form(status: str) -> str:
    """``FirmOrder`` -> ``Firm Order``: the form the platform's screens (and some payloads) use."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", status)


def _placeholder(name: str, tags: list[str], value: str) -> dict[str, Any]:
    return {
        "name": name,
        "originalValue": value,
        "phType": "DefinedData",
        "tags": tags,
        "value": value,
    }


def _line_item(index: int, section: str, heading: str, original: str, text: str, placeholders=()) -> dict:
    return {
        "elements": [{"index": 0, "text": text}],
        "fragments": [],
        "index": index,
        "locked": False,
        "mrcHeading": heading,
        "mrcSection": section,
        "nameVariation": heading,
        "originalHeading": original,
        "originalSection": "",
        "placeholders": list(placeholders),
        "subItems": [],
    }


def _mrc_line_items(root: Root, rng: random.Random) -> list[dict[str, Any]]:
    """The contract's MRC line items (risk and security details) with their Defined Data placeholders."""
    page = lambda: f"Page:{rng.getrandbits(32):08X}-5AEC-4259-8E8C-2AF144361591"  # noqa: E731
    expiry = root.inception + dt.timedelta(days=364)
    return [
        _line_item(0, "RiskDetails", "NonMRCHeading", "RISK DETAILS ", ""),
        _line_item(
            1, "RiskDetails", "UMR", "UNIQUE MARKET REFERENCE", " [[DefinedData0]]",
            [_placeholder("DefinedData0", [page(), "Broker_Reference"], root.umr.strip())],
        ),
        _line_item(2, "RiskDetails", "Insured", "INSURED", root.insured_name),
        _line_item(
            3, "RiskDetails", "Period", "PERIOD", "From: [[DefinedData0]] To: [[DefinedData1]]",
            [
                _placeholder("DefinedData0", [page(), "Inception_Date"], root.inception.strftime("%d %b %Y")),
                _placeholder("DefinedData1", [page(), "Expiry_Date"], expiry.strftime("%d %b %Y")),
                _placeholder("DefinedData2", [page(), "Expiry_Time", "Inception_Time"], "12.01 a.m."),
            ],
        ),
        _line_item(
            4, "RiskDetails", "ContractType", "TYPE", " [[DefinedData0]]",
            [_placeholder("DefinedData0", [page(), "Class_Of_Business"], root.contract_type)],
        ),
        _line_item(
            5, "RiskDetails", "LimitOfLiability", "LIMITS OF LIABILITY", "[[DefinedData0]] any one occurrence",
            [_placeholder("DefinedData0", [page(), "Coverage_Amount"], root.limit)],
        ),
        _line_item(6, "RiskDetails", "Situation", "TERRITORY", "Worldwide"),
        _line_item(
            7, "RiskDetails", "Premium", "PREMIUM", " [[DefinedData0]]",
            [_placeholder("DefinedData0", [page(), "Premium_Amount"], f"{root.premium_currency} {money(root.premium)}")],
        ),
        _line_item(8, "SecurityDetails", "NonMRCHeading", "SECURITY DETAILS ", ""),
        _line_item(
            9, "SecurityDetails", "OrderHereon", "ORDER HEREON", " [[DefinedData0]]",
            [_placeholder("DefinedData0", [page(), "Order"], "100% of 100%")],
        ),
        _line_item(
            10, "BrokerRemunerationAndDeductions", "TotalBrokerage", "TOTAL BROKERAGE", " [[DefinedData0]]",
            [_placeholder("DefinedData0", [page(), "Brokerage_%"], f"{root.brokerage.normalize():f}%")],
        ),
    ]


def money(amount: Decimal) -> str:
    """An amount as the platform shows it: thousands separated by commas, pence only when there are some."""
    return f"{amount:,.2f}" if amount != amount.to_integral_value() else f"{int(amount):,}"


def placing(root: Root, suffix: str) -> dict[str, Any]:
    """``GET /api/risks/{riskID}``: an ``RWPlacing`` with ``control`` and ``MRCContract``."""
    doc_id = f"{root.root_id}::{suffix}"
    rng = random.Random(f"{root.seed}:{doc_id}")
    broker = ORG_BY_ID[root.broker]
    lead = ORG_BY_ID[root.lead] if root.lead and root.stage >= 1 else None
    items = _mrc_line_items(root, rng)
    control: dict[str, Any] = {
        "contractType": root.contract_type,
        "createdInVersion": 21100,
        "insuranceType": "Insurance" if root.index % 5 else "ReInsurance",
        "insuredName": root.insured_name,
        "isFacility": root.is_facility,
        "limitSummary": root.limit,
        "originalDocID": "",
        "placementType": "FullContract",
        "placingBroker": f"{broker.name} {broker.teams[0].name}",
        "placingBrokerChannel": root.placing_broker_channel,
        "shownToUnderwriter": "",
        "status": _instance_status(root, suffix),
        "umr": root.umr,
    }
    if lead:
        control["leadUnderwriterChannel"] = f"{lead.company_id.lower()}_{CARRIER_TEAM[lead.company_id]}"
        control["leadUnderwriter"] = f"{lead.name} {lead.teams[0].name}"
    if root.facility_root:
        control["associatedFacilityIDs"] = [root.facility_root]
    return {
        "MRCContract": {"lineItems": items},
        "_id": doc_id,
        "_rev": root.rev(doc_id),
        "channels": root.channels,
        "control": control,
        "createdAt": stamp(root.created_for(suffix)),
        "provenance": {"system": "LavAPI", "version": "2025-05-29@10:00:00", "writtenAt": stamp(root.updated_at)},
        "type": "RWPlacing",
        "updatedAt": stamp(root.updated_at),
    }


def root_instances(root: Root) -> list[dict[str, Any]]:
    """``GET /api/risks/root/{rootID}``."""
    return [{"id": i, "type": "RWPlacing", "channels": root.channels} for i in root.instance_ids()]


def shares(root: Root) -> list[tuple[str, Decimal, Decimal]]:
    """(carrier, written %, signed %) per carrier: the sandbox's truth for the market lines.

    Signed lines are written lines signed down so that they total exactly 100% when the risk is
    over-placed; the lead absorbs the rounding remainder.
    """
    if not root.has_lines() or not root.carriers:
        return []
    q = Decimal("0.0001")
    # A sole market writes the whole risk; in a subscription market lines often add up to more than
    # 100% (over-placement) and are signed down.
    choices = ("100",) if len(root.carriers) == 1 else WRITTEN_SHARES[min(len(root.carriers), 4) - 2]
    written = [
        (c, Decimal(choices[int(hashlib.md5(f"{root.root_id}{c}".encode()).hexdigest(), 16) % len(choices)]))
        for c in root.carriers
    ]
    total = sum(w for _, w in written)
    if total <= 100:
        signed = [w for _, w in written]
    else:
        signed = [(w * 100 / total).quantize(q, rounding=ROUND_HALF_UP) for _, w in written]
        signed[0] += Decimal(100) - sum(signed)
    # Each later change of the signed line set alone signs the first carrier's line down by half a point.
    signed[0] -= Decimal("0.5") * root.line_generation
    return [(c, w, s) for (c, w), s in zip(written, signed, strict=True)]


def _line(root: Root, carrier: str, written: Decimal, signed: Decimal | None, role: str,
          at: dt.datetime) -> dict[str, Any]:
    org = ORG_BY_ID[carrier]
    stamp_doc = {
        "bureauMarket": org.market,
        "bureauMarketCode": org.syndicate,
        "businessUnit": f"Lloyd's Syndicate No.{org.syndicate}" if org.market == "Lloyd's" else org.name,
        "stampType": "lloyds" if org.market == "Lloyd's" else "other",
        "uniqueID": f"ST{hashlib.md5(carrier.encode()).hexdigest()[:8].upper()}-1F69-435D-84E9-187BB3DD0F23",
    }
    impression: dict[str, Any] = {
        "riskCodes": [{"code": RISK_CODES[root.index % len(RISK_CODES)], "index": "0"}],
        "writtenLinePercentageString": f"{written.normalize():f}",
        "uwRefs": [f"{org.pseudonym or 'REF'}{root.index:07d}"],
        "yearOfAccount": str(root.inception.year),
        "stamp": stamp_doc,
        "stampIdentifiers": [
            {
                "category": "LloydsSyndicate" if org.market == "Lloyd's" else "CompanyMarket",
                "categoryNumber": org.syndicate,
                "categoryExtra": org.pseudonym,
            }
        ],
    }
    if signed is not None:
        impression["signedLinePercentageString"] = f"{signed.normalize():f}"
    return {
        "businessUnit": stamp_doc["businessUnit"],
        "impressions": [impression],
        "role": role,
        "sectionIdentifiers": [],
        "stampedAt": stamp(at),
        "stamperChannel": f"{carrier.lower()}_{CARRIER_TEAM[carrier]}",
        "stamperName": f"Underwriter at {org.name}",
        "version": 1,
    }


def combined_sets(root: Root) -> list[dict[str, Any]]:
    """``GET /api/lines/{rootID}/combinedSets``: one written set per carrier, signed when signed."""
    out: list[dict[str, Any]] = []
    signed_now = root.is_signed()
    for carrier, written, signed in shares(root):
        parent = f"{root.root_id}::FO::{carrier}::{CARRIER_TEAM[carrier]}"
        role = "leader" if carrier == root.lead else "doesNotApply"
        kinds = [("WRLS", "RWWrittenLineSet", None)] + ([("SILS", "RWSignedLineSet", signed)] if signed_now else [])
        for tag, doc_type, signed_pct in kinds:
            doc_id = f"{parent}::{tag}"
            at = (root.signed_at() if tag == "SILS" else None) or root.created_for("FO")
            bump = root.line_generation if tag == "SILS" else 0
            updated = max((root.updated_at, *root.line_times)) if tag == "SILS" else root.updated_at
            out.append(
                {
                    "_id": doc_id,
                    "_rev": root.rev(doc_id, bump),
                    "channels": [root.placing_broker_channel, f"{carrier.lower()}_{CARRIER_TEAM[carrier]}"],
                    "contents": [_line(root, carrier, written, signed_pct, role, at)],
                    "createdAt": stamp(at),
                    "isOffline": False,
                    "parentDocID": parent,
                    "provenance": {"system": "LavAPI", "writtenAt": stamp(updated)},
                    "type": doc_type,
                    "updatedAt": stamp(updated),
                }
            )
    return out


def activities(root: Root) -> list[dict[str, Any]]:
    """The root's activity documents (``RWActivity``), oldest first: what happened to it and when.
    A change of its signed lines alone records "Signed Lines" again (the name the platform uses for
    a signing; which name a sign-down records on the real platform is not known)."""
    events = [("Created New Placement", f"{root.root_id}::QR1", root.created_at)]
    events += [("Placing Updated", f"{root.root_id}::QR1", t) for t in root.stage_times[1:]]
    if root.has_lines():
        events.append(("Line Written", f"{root.root_id}::FO", root.created_for("FO")))
    if root.is_signed() and root.signed_at():
        events.append(("Signed Lines", f"{root.root_id}::FO", root.signed_at()))
    events += [("Signed Lines", f"{root.root_id}::FO", t) for t in root.line_times]
    out = []
    for n, (name, parent, at) in enumerate(sorted(events, key=lambda e: e[2])):
        key = hashlib.md5(f"{root.seed}:{root.root_id}:{n}:{name}:{at}".encode()).hexdigest()
        out.append({
            "_id": f"{root.root_id}::ACTI::{key[:8]}-{key[8:12]}-4{key[13:16]}-8{key[17:20]}-{key[20:32]}".upper(),
            "_rev": f"1-{key}",
            "activity": name,
            "hardcodedActivity": name,
            "channels": root.channels,
            "parentDocID": parent,
            "userID": "MU" + str(uuid.UUID(key)).upper()[2:],
            "createdAt": stamp(at),
        })
    return out


def summary(root: Root, channel: str) -> dict[str, Any]:
    """One ``RWRiskSummary`` item of ``GET /api/summary`` for the caller's team channel."""
    docs = []
    for suffix in root.suffixes():
        doc_id = f"{root.root_id}::{suffix}"
        docs.append(
            {
                "channels": root.channels,
                "createdAt": stamp(root.created_for(suffix)),
                "createdInVersion": 21100,
                "id": doc_id,
                "inceptionDate": int(dt.datetime.combine(root.inception, dt.time(), dt.UTC).timestamp()),
                "insuredName": root.insured_name,
                "isFacility": root.is_facility,
                "leadUnderwriterChannel": "",
                "limitSummary": root.limit,
                "placementType": "FullContract",
                "placingBrokerChannel": root.placing_broker_channel,
                "rev": root.rev(doc_id),
                "status": _instance_status(root, suffix),
                "type": "RWPlacing",
                "umr": root.umr,
                "updatedAt": stamp(root.updated_at),
            }
        )
    sid = f"RWRiskSummary::{root.root_id}::{channel}"
    return {
        "_id": sid,
        "_rev": root.rev(sid),
        "channels": [channel],
        "docs": docs,
        "filters": [f"status:{root.status}", f"umr:{root.umr.strip().lower()}", "ptype:FullContract"],
        "rootID": root.root_id,
        "updatedAt": stamp(root.updated_at, iso=True),
    }


def corporate(departed: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """``GET /api/shared/corporate``: every company, its teams and members (no emails); ``departed``
    memberships (MU ids) have left their organisation and are not listed."""
    out = []
    for org in ORGANISATIONS:
        members = []
        for user in USERS:
            for m in user.memberships:
                if m.company_id == org.company_id and m.user_id not in departed:
                    members.append(
                        {"name": user.name, "uniqueID": m.user_id, "currentState": "Live", "teams": list(m.teams)}
                    )
        stamps = []
        if org.market:
            stamps.append(
                {
                    "bureauMarket": org.market,
                    "bureauMarketCode": org.syndicate,
                    "businessUnit": org.name,
                    "stampType": "lloyds" if org.market == "Lloyd's" else "other",
                }
            )
        out.append(
            {
                "_id": f"Corporate-{org.company_id}",
                "_rev": f"3-{hashlib.md5(org.company_id.encode()).hexdigest()}",
                "channels": ["shared"],
                "companyId": org.company_id,
                "createdAt": "2020-02-24 15:32:50",
                "isOffline": False,
                "isTestOnly": False,
                "members": members,
                "name": org.name,
                "role": org.role,
                "stamps": stamps,
                "teams": [
                    {"teamId": t.team_id, "name": t.name, "channel": org.channel(t.team_id), "isInactive": False}
                    for t in org.teams
                ],
                "updatedAt": "2024-02-24T15:32:50.000Z",
            }
        )
    return out


def my_details(user_id: str) -> dict[str, Any]:
    """``GET /api/user/myDetails`` for one membership (MU id)."""
    user, m = MEMBERSHIP_BY_MU[user_id]
    org = ORG_BY_ID[m.company_id]
    teams = [{"teamId": t.team_id, "name": t.name, "channel": org.channel(t.team_id)} for t in org.teams]
    return {
        "companyId": org.company_id,
        "companyName": org.name,
        "role": org.role,
        "teams": [t for t in teams if t["channel"] in m.teams],
        "uniqueID": m.user_id,
        "username": user.name,
    }


VERSION = {
    "revapiCommit": "0000000000000000000000000000000000000000",
    "buildDate": "2025-05-29@10:00:00",
    "revapiCommitMessage": "whitespace-etl sandbox",
    "riskLibraryCommit": "0000000000000000000000000000000000000000",
}


# -- Defined Data (GET /api/v23.09/data/{riskID}[/tagset/{tagset}]) --------------------------------

ACORD_TAGS = {
    "Broker_Reference": "ACORDGPM:BrokerContractReference",
    "Inception_Date": "ACORDGPM:InceptionDate",
    "Expiry_Date": "ACORDGPM:ExpiryDate",
    "Inception_Time": "ACORDGPM:InceptionTime",
    "Expiry_Time": "ACORDGPM:ExpiryTime",
    "Class_Of_Business": "ACORDGPM:ClassOfBusiness",
    "Coverage_Amount": "ACORDGPM:CoverageAmount",
    "Premium_Amount": "ACORDGPM:PremiumAmount",
    "Brokerage_%": "ACORDGPM:BrokeragePercentage",
    "Order": "ACORDGPM:OrderHereon",
}
"""The ACORD Global Placing tagset's names for the tags the sandbox's contracts carry: a prefix of
ACORDGPM and a suffix without underscores, as the spec describes."""


def defined_data(root: Root, suffix: str, user_id: str, now: dt.datetime, tagset: str | None = None) -> dict[str, Any]:
    """The contract's tagged values, one entry per (placeholder, tag), as the platform flattens them;
    the ``Page:`` tag of a placeholder is its ``parentID`` (the document id in the ACORD tagset)."""
    doc = placing(root, suffix)
    out = []
    for item in doc["MRCContract"]["lineItems"]:
        for ph in item["placeholders"]:
            page = next((t for t in ph["tags"] if t.startswith("Page:")), "")
            for tag in (t for t in ph["tags"] if not t.startswith("Page:")):
                if tagset == "ACORDGPM":
                    if tag not in ACORD_TAGS:
                        continue
                    entry = {"originalHeading": item["originalHeading"].strip().title(), "mrcHeading": item["mrcHeading"],
                             "parentID": doc["_id"], "tag": ACORD_TAGS[tag], "controlled": True,
                             "section": item["mrcSection"], "value": ph["value"]}
                else:
                    entry = {"originalHeading": item["originalHeading"], "name": ph["name"],
                             "mrcHeading": item["mrcHeading"], "value": ph["value"], "section": item["mrcSection"],
                             "parentID": page, "lineItemIndex": item["index"], "tag": tag}
                out.append(entry)
    return {
        "metadata": {"userID": user_id, "tagSet": tagset or "Whitespace", "fetchedAt": stamp(now),
                     "documentID": doc["_id"], "env": "sandbox", "documentRevision": doc["_rev"], "version": "23.09"},
        "multiSectionDefinition": [],
        "definedData": out,
    }


# -- the MI report (POST /mireport/prepare, /mireport/fetch) ----------------------------------------

EUROPEAN_AMOUNT_SHARE = 0.004
"""Placements whose MI premium a broker typed in the continental form (``1.250.000,00``): text a
careless parser reads as 1.25, which the pipeline must refuse (NULL, kept raw, counted)."""


def _mi_stamp(org) -> str:
    if org.market == "Lloyd's":
        return f"Lloyd's Underwriter Syndicate No. {org.syndicate} {org.pseudonym},Lloyd's,{org.syndicate}"
    return f"{org.name},{org.market or 'Company'},{org.syndicate}"


def _pct(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def mi_contract_type(root: Root) -> str:
    """The MI report's ``contractType``: the placement type (``Open Market``, ``Facilities``,
    ``Declarations``), as the summary's filters and the published MI example have it, not the class of
    business the risk list and the contract call ``ContractType`` ("Aviation Hull and Liability Insurance")."""
    if root.is_facility:
        return "Facilities"
    return "Declarations" if root.facility_root else "Open Market"


def mi_row(root: Root, viewer: str, now: dt.datetime, status_display: bool = False) -> dict[str, Any]:
    """One MI report row of a placement as organisation ``viewer`` sees it: a broker every carrier's
    line, a carrier only its own. ``status_display``: ``status`` in its display form ("Firm Order")."""
    broker = ORG_BY_ID[root.broker]
    broker_team = next(t for t in broker.teams if t.team_id == root.broker_team)
    viewer_org = ORG_BY_ID[viewer]
    viewer_team = root.broker_team if viewer == root.broker else CARRIER_TEAM.get(viewer, viewer_org.teams[0].team_id)
    channel = f"{viewer.lower()}_{viewer_team}"
    expiry = root.inception + dt.timedelta(days=364)
    premium = money(root.premium)
    if mix(root.seed, root.index, 26) < EUROPEAN_AMOUNT_SHARE:
        premium = f"{int(root.premium):,}".replace(",", ".") + ",00"
    quoted = root.entered("QuotedByUnderwriter", "BindableQuote")
    firm = root.entered("FirmOrder", "Signed", prefix="Endorsement")
    signed_at = root.signed_at()
    lead_instance = root.instance_ids()[-1]
    details = []
    for carrier, written, signed in shares(root) or [(c, None, None) for c in root.carriers]:
        if viewer != root.broker and carrier != viewer:
            continue
        org = ORG_BY_ID[carrier]
        content = []
        if written is not None:
            content.append({
                "writtenLineStampedAt": stamp(root.created_for("FO")),
                "leadUWFlag": "Yes" if carrier == root.lead else "No",
                "impressions": [{
                    "writtenLinePerc": _pct(written),
                    "stamp": _mi_stamp(org),
                    "ref": f"{org.pseudonym or 'REF'}{root.index:07d}",
                    "signedLinePerc": _pct(signed) if root.is_signed() else "",
                }],
            })
        details.append({
            "carrierTeamName": f"{carrier} {ORG_BY_ID[carrier].teams[0].name}",
            "carrierName": org.name,
            "isOffPlatform": "No",
            "content": content,
            "carrierCompanyID": carrier,
            "signed": stamp(signed_at) if signed_at else "",
            "carrierTeamID": CARRIER_TEAM[carrier],
            "firmOrder": stamp(firm) if firm else "",
            "quotationRequest": stamp(root.created_at),
            "quotedByUnderwriter": stamp(quoted) if quoted else "",
            "riskID": lead_instance,
            "underwriterName": f"Underwriter at {org.name}",
        })
    row = {
        "riskUpdatedAt": stamp(root.changed_at),
        "type": "RWMIReport",
        "status": display_form(root.status) if status_display else root.status,
        "docOwnerCompany": broker.name,
        "title": root.insured_name,
        "underwriterDetails": details,
        "brokerage": f"{root.brokerage.normalize():f}%",
        "periodTo": f"{expiry.day} {expiry.strftime('%B %Y')}",
        "umr": root.umr,
        "rootID": root.root_id,
        "brokerTeam": f"{root.broker} {broker_team.name}",
        "refreshRequired": False,
        "dataVersion": 6,
        "limit": root.limit,
        "premiumAll": f"{root.premium_currency} {premium}  (100%)",
        "contractType": mi_contract_type(root),
        "premiumCCY": root.premium_currency,
        "riskCreatedAt": stamp(root.created_at),
        "brokerCompanyName": broker.name,
        "_id": f"{root.root_id}::MIREP::{channel}",
        "premium": premium,
        "insured": root.insured_name,
        "brokerTeamID": root.broker_team,
        "channels": [channel],
        "brokerCompanyID": root.broker,
        "brokerName": f"Broker at {broker.name}",
        "periodFrom": f"{root.inception.day} {root.inception.strftime('%B %Y')}",
        "createdAt": stamp(now),
    }
    row["dataCount"] = len(row) + 1
    return row


MI_COLUMNS = ("umr", "insured", "status", "contractType", "brokerCompanyName", "brokerTeam", "periodFrom",
              "periodTo", "limit", "premiumCCY", "premium", "brokerage", "carrierName", "carrierTeamName",
              "leadUWFlag", "writtenLinePerc", "signedLinePerc", "stamp", "ref", "riskUpdatedAt")


def mi_csv(rows: list[dict[str, Any]]) -> str:
    """``POST /mireport/fetch`` in the tall CSV layout: one line per carrier line (impression)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MI_COLUMNS)
    for row in rows:
        lines = [(d, c, i) for d in row["underwriterDetails"] for c in d["content"] for i in c["impressions"]]
        for d, c, i in lines or [({}, {}, {})]:
            merged = {**row, **d, **c, **i}
            writer.writerow([merged.get(k, "") for k in MI_COLUMNS])
    return out.getvalue()
