"""The sandbox's MI report and Defined Data: consistent with the placements and lines it serves,
London-market money, and the "changed since the last fetch" cursor kept per login."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.world import ORG_BY_ID
from tests.sandbox.helpers import SUMO, api, id_token

BROKER, WHITESAILS, MCNEILLIE = (m.user_id for m in SUMO.memberships)


def _post(server: SandboxServer, path: str, token: str, user_id: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body or {}, trust_env=False, timeout=30,
                      headers={"Authorization": f"Bearer {token}", "UserID": user_id})


def prepare(server: SandboxServer, token: str, user_id: str) -> list[dict]:
    response = _post(server, "/mireport/prepare", token, user_id)
    assert response.status_code == 200, response.text
    return response.json()


def fetch(server: SandboxServer, token: str, user_id: str) -> str:
    response = _post(server, "/mireport/fetch", token, user_id, {"format": "csv", "layout": "tall"})
    assert response.status_code == 200, response.text
    return response.text


def amount(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


@pytest.fixture
def server():
    with SandboxServer(seed=3) as s:
        yield s


def test_a_carriers_premium_share_equals_premium_times_its_signed_line(server: SandboxServer) -> None:
    token = id_token(server)
    rows = prepare(server, token, BROKER)
    checked = 0
    for row in rows:
        if row["status"] != "Signed" or "." in row["premium"] and "," in row["premium"].split(".")[-1]:
            continue
        sets = api(server, f"/lines/{row['rootID']}/combinedSets", token, BROKER).json()
        signed = {s["contents"][0]["stamperChannel"].split("_")[0].upper():
                  Decimal(s["contents"][0]["impressions"][0]["signedLinePercentageString"])
                  for s in sets if s["type"] == "RWSignedLineSet"}
        mi = {d["carrierCompanyID"]: Decimal(d["content"][0]["impressions"][0]["signedLinePerc"])
              for d in row["underwriterDetails"]}
        assert mi == signed, row["rootID"]
        premium = amount(row["premium"])
        shares = {c: premium * pct / 100 for c, pct in mi.items()}
        if sum(signed.values()) == 100:
            assert sum(shares.values()) == premium
        checked += 1
    assert checked > 50


def test_the_money_is_london_market_money(server: SandboxServer) -> None:
    rows = prepare(server, id_token(server), BROKER)
    currencies = {r["premiumCCY"] for r in rows}
    assert {"USD", "GBP", "EUR"} <= currencies
    brokerage = [Decimal(r["brokerage"].rstrip("%")) for r in rows]
    assert min(brokerage) >= 5 and max(brokerage) <= 30
    limits = [amount(r["limit"].split()[1]) for r in rows]
    assert min(limits) >= 1_000_000
    for r in rows:
        assert r["premiumAll"].startswith(r["premiumCCY"] + " ") and r["premiumAll"].endswith("(100%)")
    # now and then a premium typed the continental way, which a careless parser would misread
    assert any(r["premium"].endswith(",00") for r in rows)


def test_a_carrier_sees_only_its_own_line(server: SandboxServer) -> None:
    rows = prepare(server, id_token(server), WHITESAILS)
    assert rows and all({d["carrierCompanyID"] for d in r["underwriterDetails"]} == {"WHITESAILS"} for r in rows)
    assert all(r["_id"].endswith("::MIREP::whitesails_MARINE") for r in rows)


def test_the_cursor_moves_at_fetch_and_is_kept_per_login(server: SandboxServer) -> None:
    token = id_token(server)
    first = {u: prepare(server, token, u) for u in (BROKER, WHITESAILS)}
    assert all(first.values())
    assert prepare(server, token, BROKER) == first[BROKER]  # prepare alone moves nothing
    csv = fetch(server, token, BROKER)
    assert csv.splitlines()[0].startswith("umr,insured,status")
    assert len(csv.splitlines()) > len(first[BROKER])  # tall: a line per carrier line
    assert prepare(server, token, BROKER) == []
    # one cursor for the login: the broker's fetch also forgot what the carrier had not fetched
    assert prepare(server, token, WHITESAILS) == []

    fetched_at = server.world.now
    server.advance(changed_fraction=0.1, new_roots=5, lines_changed_fraction=0.2)
    changed = prepare(server, token, BROKER)
    world = server.world
    expected = {world.root(i).root_id for i in world.root_indexes("GAILBKR") if world.root(i).changed_at > fetched_at}
    assert {r["rootID"] for r in changed} == expected and expected


def test_a_change_between_prepare_and_fetch_is_never_reported(server: SandboxServer) -> None:
    token = id_token(server)
    prepare(server, token, BROKER)
    fetch(server, token, BROKER)
    prepare(server, token, BROKER)
    server.advance(changed_fraction=0.2, new_roots=0)
    fetch(server, token, BROKER)  # the platform forgets the changes made since the prepare
    assert prepare(server, token, BROKER) == []


def test_defined_data_carries_the_contracts_money(server: SandboxServer) -> None:
    token = id_token(server)
    row = next(r for r in prepare(server, token, BROKER) if r["premium"][-3:] != ",00")
    data = api(server, f"/v23.09/data/{row['rootID']}", token, BROKER).json()
    tags = {d["tag"]: d["value"] for d in data["definedData"]}
    assert tags["Premium_Amount"] == f"{row['premiumCCY']} {row['premium']}"
    assert tags["Coverage_Amount"] == row["limit"]
    assert tags["Brokerage_%"] == row["brokerage"]
    assert data["metadata"]["documentID"].startswith(row["rootID"] + "::")
    acord = api(server, f"/v23.09/data/{row['rootID']}/tagset/ACORDGPM", token, BROKER).json()
    assert acord["metadata"]["tagSet"] == "ACORDGPM"
    assert {d["tag"] for d in acord["definedData"]} >= {"ACORDGPM:PremiumAmount", "ACORDGPM:InceptionDate"}
    assert api(server, f"/v23.09/data/{row['rootID']}/tagset/NOPE", token, BROKER).status_code == 400


def test_mi_rows_name_real_carriers_and_stamps(server: SandboxServer) -> None:
    rows = prepare(server, id_token(server), BROKER)
    for row in rows:
        for d in row["underwriterDetails"]:
            org = ORG_BY_ID[d["carrierCompanyID"]]
            for content in d["content"]:
                for imp in content["impressions"]:
                    assert imp["stamp"].rsplit(",", 2)[2] == org.syndicate
