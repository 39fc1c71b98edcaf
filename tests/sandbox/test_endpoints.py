"""Every sandbox endpoint and auth rule, over loopback."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest

from sandbox import BUCKET, SINGLE_REFRESH_TOKEN, SandboxServer
from sandbox.world import STATUS_PATHS
from tests.sandbox.helpers import SINGLE, SUMO, api, id_token

UMR = re.compile(r"^B\d{4}[A-Z0-9]{1,12}$")
ROOT = re.compile(r"^IC[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
ALL_STATUSES = {s for path in STATUS_PATHS for s in path}


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_oidc_refresh_returns_a_jwt_and_never_a_refresh_token(sandbox: SandboxServer) -> None:
    r = httpx.get(f"{sandbox.sync_url}/{BUCKET}/_oidc_refresh", params={"refresh_token": SINGLE_REFRESH_TOKEN})
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"id_token", "session_id", "name"}
    c = claims(body["id_token"])
    assert {"iss", "sub", "aud", "iat", "exp"} <= set(c)
    assert c["exp"] - c["iat"] == 3600


def test_refresh_errors_are_sync_gateway_bodies(sandbox: SandboxServer) -> None:
    url = f"{sandbox.sync_url}/{BUCKET}/_oidc_refresh"
    missing = httpx.get(url)
    assert (missing.status_code, missing.json()) == (
        400, {"error": "Bad Request", "reason": "Refresh token must be present for oidc refresh"})
    rejected = httpx.get(url, params={"refresh_token": "not-a-token"})
    assert (rejected.status_code, rejected.json()) == (
        500, {"error": "Internal Server Error", "reason": "Unable to refresh token."})
    sandbox.set_faults(legacy_refresh_errors=True)
    legacy = httpx.get(url, params={"refresh_token": "not-a-token"})
    assert (legacy.status_code, legacy.json()["reason"]) == (401, "Unable to refresh token.")


def test_revoked_refresh_token_is_rejected(sandbox: SandboxServer) -> None:
    sandbox.admin("revoke", refresh_token=SINGLE_REFRESH_TOKEN)
    r = httpx.get(f"{sandbox.sync_url}/{BUCKET}/_oidc_refresh", params={"refresh_token": SINGLE_REFRESH_TOKEN})
    assert r.status_code == 500


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer a.b.c", "Basic abc"])
def test_api_without_a_valid_bearer_is_invalid_wsauth(sandbox: SandboxServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.get(f"{sandbox.api_url}/risks", headers=headers)
    assert (r.status_code, r.json()) == (401, {"error": True, "reason": "Invalid WSAUTH"})


def test_expired_bearer_is_invalid_wsauth(clock) -> None:
    with SandboxServer(token_lifetime=60) as server:
        token = id_token(server, SINGLE_REFRESH_TOKEN)
        assert api(server, "/risks", token).status_code == 200
        clock(60.5)
        r = api(server, "/risks", token)
        assert (r.status_code, r.json()["reason"]) == (401, "Invalid WSAUTH")


def test_sumo_user_needs_a_valid_user_id(sandbox: SandboxServer) -> None:
    token = id_token(sandbox)
    expected = {"reason": "Invalid WSAUTH: Valid UserID must be supplied", "error": True}
    for user_id in (None, "MU00000000-0000-0000-0000-000000000000", SINGLE.memberships[0].user_id):
        r = api(sandbox, "/risks", token, user_id)
        assert (r.status_code, r.json()) == (401, expected)
    assert api(sandbox, "/risks", token, SUMO.memberships[0].user_id).status_code == 200


def test_single_organisation_user_needs_no_user_id(sandbox: SandboxServer) -> None:
    token = id_token(sandbox, SINGLE_REFRESH_TOKEN)
    assert api(sandbox, "/risks", token).status_code == 200
    assert api(sandbox, "/user/myDetails", token).json()["uniqueID"] == SINGLE.memberships[0].user_id


def test_corporate_needs_no_user_id_and_lists_members_without_emails(sandbox: SandboxServer) -> None:
    companies = api(sandbox, "/shared/corporate", id_token(sandbox)).json()
    members = [m for c in companies for m in c["members"]]
    sumo_ids = {m["uniqueID"] for m in members if m["name"] == SUMO.name}
    assert sumo_ids == {m.user_id for m in SUMO.memberships}
    assert all("email" not in m for m in members)
    assert all(t["channel"] == f"{c['companyId'].lower()}_{t['teamId']}" for c in companies for t in c["teams"])


def test_my_details_for_each_sumo_membership(sandbox: SandboxServer) -> None:
    token = id_token(sandbox)
    companies = {api(sandbox, "/user/myDetails", token, m.user_id).json()["companyId"] for m in SUMO.memberships}
    assert companies == {"GAILBKR", "WHITESAILS", "MCNEILLIEUWR"}


def test_risk_lists_match_the_help_page_scale_and_share_risks(sandbox: SandboxServer) -> None:
    token = id_token(sandbox)
    lists = {m.company_id: api(sandbox, "/risks", token, m.user_id).json() for m in SUMO.memberships}
    sizes = {k: len(v) for k, v in lists.items()}
    assert 1300 <= sizes["GAILBKR"] <= 1800 and 350 <= sizes["WHITESAILS"] <= 600 and 150 <= sizes["MCNEILLIEUWR"] <= 300
    ids = {k: {r["id"] for r in v} for k, v in lists.items()}
    in_all_three = ids["GAILBKR"] & ids["WHITESAILS"] & ids["MCNEILLIEUWR"]
    assert in_all_three, "a risk placed by the broker and shown to both carriers appears in all three lists"
    row = next(r for r in lists["GAILBKR"] if r["id"] in in_all_three)
    assert {"gailbkr_ALL", "whitesails_MARINE", "mcneillieuwr_ALL"} <= set(row["channels"])


def test_risk_rows_are_realistic(sandbox: SandboxServer) -> None:
    rows = api(sandbox, "/risks", id_token(sandbox), SUMO.memberships[0].user_id).json()
    assert set(rows[0]) == {"id", "rev", "type", "createdAt", "updatedAt", "umr", "placingBrokerChannel", "channels",
                            "Status", "InsuredName", "ContractType", "IsFacility"}
    roots = {}
    for r in rows:
        root, _, suffix = r["id"].partition("::")
        assert ROOT.match(root) and suffix
        roots.setdefault(root, []).append(suffix)
        assert UMR.match(r["umr"].strip()) and 6 <= len(r["umr"].strip()) <= 17
        assert r["Status"] in ALL_STATUSES
        assert re.match(r"^\d+-[0-9a-f]{32}$", r["rev"])
        assert all(re.match(r"^[a-z]+_[A-Z]+$", c) for c in r["channels"])
    assert max(len(v) for v in roots.values()) >= 3, "roots have several instances"
    assert any(r["umr"] != r["umr"].strip() for r in rows), "stray spaces occur"
    assert any("T" in r["updatedAt"] for r in rows) and any("T" not in r["updatedAt"] for r in rows)


def test_data_is_deterministic_for_a_seed() -> None:
    with SandboxServer(seed=3) as a, SandboxServer(seed=3) as b, SandboxServer(seed=4) as c:
        mu = SUMO.memberships[1].user_id
        bodies = [api(s, "/risks", id_token(s), mu).content for s in (a, b, c)]
    assert bodies[0] == bodies[1] and bodies[0] != bodies[2]


def test_contract_root_instances_and_lines(sandbox: SandboxServer) -> None:
    token, mu = id_token(sandbox), SUMO.memberships[0].user_id
    rows = api(sandbox, "/risks", token, mu).json()
    fo = next(r for r in rows if r["id"].endswith("::FO") and r["Status"] == "Signed")
    root = fo["id"].split("::")[0]
    contract = api(sandbox, f"/risks/{fo['id']}", token, mu).json()
    assert contract["_id"] == fo["id"] and contract["control"]["umr"] == fo["umr"]
    tags = {t for li in contract["MRCContract"]["lineItems"] for p in li["placeholders"] for t in p["tags"]}
    assert {"Inception_Date", "Expiry_Date"} <= tags
    instances = api(sandbox, f"/risks/root/{root}", token, mu).json()
    assert fo["id"] in {i["id"] for i in instances}
    sets = api(sandbox, f"/lines/{root}/combinedSets", token, mu).json()
    signed = [d for d in sets if d["type"] == "RWSignedLineSet"]
    assert signed and {d["type"] for d in sets} == {"RWWrittenLineSet", "RWSignedLineSet"}
    pct = [imp["signedLinePercentageString"] for d in signed for line in d["contents"] for imp in line["impressions"]]
    assert all(isinstance(p, str) for p in pct)
    assert api(sandbox, "/risks/ICFFFFFFFF-0000-4000-8000-000000000000::FO", token, mu).status_code == 400


def test_summary_pages_by_last_and_from(sandbox: SandboxServer) -> None:
    token, mu = id_token(sandbox), SUMO.memberships[0].user_id
    first = api(sandbox, "/summary", token, mu).json()
    assert len(first) == 60
    stamps = [s["updatedAt"] for s in first]
    assert stamps == sorted(stamps, reverse=True)
    second = api(sandbox, "/summary", token, mu, params={"last": first[-1]["rootID"]}).json()
    assert len(second) == 60 and not {s["rootID"] for s in first} & {s["rootID"] for s in second}
    seen, last = set(), None
    while True:
        page = api(sandbox, "/summary", token, mu, params={"last": last} if last else None).json()
        if not page:
            break
        seen |= {s["rootID"] for s in page}
        last = page[-1]["rootID"]
    rows = api(sandbox, "/risks", token, mu).json()
    assert seen == {r["id"].split("::")[0] for r in rows}


def test_version_needs_no_auth(sandbox: SandboxServer) -> None:
    assert set(api(sandbox, "/version").json()) == {"revapiCommit", "buildDate", "revapiCommitMessage",
                                                    "riskLibraryCommit"}


def test_time_moves_changes_adds_and_removes_risks() -> None:
    with SandboxServer(seed=5) as server:
        token, mu = id_token(server), SUMO.memberships[0].user_id
        before = {r["id"]: r for r in api(server, "/risks", token, mu).json()}
        server.advance(changed_fraction=0.2, new_roots=15, removed_fraction=0.05)
        after = {r["id"]: r for r in api(server, "/risks", token, mu).json()}
    changed = [i for i in before.keys() & after.keys() if before[i]["rev"] != after[i]["rev"]]
    assert changed and all(after[i]["updatedAt"][:10] >= "2025-06-02" for i in changed)
    assert after.keys() - before.keys(), "new risks appear"
    assert before.keys() - after.keys(), "some risks disappear"
    moved = [i for i in changed if before[i]["Status"] != after[i]["Status"]]
    assert moved, "a change can move a risk to its next status"


def test_admin_stats_count_requests(sandbox: SandboxServer) -> None:
    token = id_token(sandbox, SINGLE_REFRESH_TOKEN)
    api(sandbox, "/risks", token)
    api(sandbox, "/risks", token)
    stats = sandbox.stats()
    assert stats["GET /api/risks"] == 2 and stats["refreshes"] >= 1


def test_activity_feed_filters_by_kind_and_both_forms_of_from(sandbox: SandboxServer) -> None:
    token, mu = id_token(sandbox), SUMO.memberships[0].user_id
    headers = {"Authorization": f"Bearer {token}", "UserID": mu}

    def feed(**body):
        r = httpx.post(f"{sandbox.api_url}/activities/filter", json=body, headers=headers, trust_env=False)
        assert r.status_code == 200, r.text
        return r.json()

    every = feed(activity="Signed Lines")
    assert every and all(a["activity"] == "Signed Lines" and "::ACTI::" in a["_id"] for a in every)
    newest = max(a["createdAt"] for a in every)
    assert [a["_id"] for a in feed(activity="Signed Lines", **{"from": newest})] == [
        a["_id"] for a in every if a["createdAt"] >= newest]
    assert len(feed(activity="Signed Lines", **{"from": "100000 days"})) == len(every)
    recent = feed(activity="Signed Lines", **{"from": "30 days"})
    assert 0 < len(recent) < len(every) and {a["_id"] for a in recent} <= {a["_id"] for a in every}
    assert feed(activity="Signed Lines", to="2000-01-01 00:00:00") == []
    bad = httpx.post(f"{sandbox.api_url}/activities/filter", json={"from": "1 day"}, headers=headers, trust_env=False)
    assert bad.status_code == 400
    root = every[0]["_id"].split("::")[0]
    full = httpx.get(f"{sandbox.api_url}/activities/{root}/full", headers=headers, trust_env=False).json()
    assert {a["activity"] for a in full} >= {"Created New Placement", "Signed Lines"}


def test_a_line_set_changes_on_its_own(sandbox: SandboxServer) -> None:
    """After a tick that changes only lines, a signed root's line set has a new revision and lower
    signed share, while its placing documents keep theirs."""
    token, mu = id_token(sandbox), SUMO.memberships[0].user_id
    rows = api(sandbox, "/risks", token, mu).json()
    signed = sorted({r["id"].split("::")[0] for r in rows if r["Status"] == "Signed"})
    before = {root: api(sandbox, f"/lines/{root}/combinedSets", token, mu).json() for root in signed}
    sandbox.advance(changed_fraction=0.0, new_roots=0, lines_changed_fraction=1.0)
    assert api(sandbox, "/risks", token, mu).json() == rows
    for root in signed:
        after = api(sandbox, f"/lines/{root}/combinedSets", token, mu).json()
        old = {d["_id"]: d for d in before[root]}
        changed = [d for d in after if d["type"] == "RWSignedLineSet" and d["_rev"] != old[d["_id"]]["_rev"]]
        assert changed, root
