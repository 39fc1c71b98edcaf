"""Every fault switch, observed on the wire without the client's retries in the way."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox import SINGLE_REFRESH_TOKEN, SandboxServer
from tests.sandbox.helpers import SUMO, api, id_token


@pytest.fixture
def token(sandbox: SandboxServer) -> str:
    return id_token(sandbox, SINGLE_REFRESH_TOKEN)


def test_rate_limit_sends_retry_after(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(rate_limit=2, retry_after="7")
    for _ in range(2):
        r = api(sandbox, "/risks", token)
        assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
    assert api(sandbox, "/risks", token).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_error_bursts(sandbox: SandboxServer, token: str, status: int) -> None:
    sandbox.set_faults(error_burst=3, error_status=status)
    assert [api(sandbox, "/risks", token).status_code for _ in range(4)] == [status] * 3 + [200]


def test_dropped_connection(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(drop=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api(sandbox, "/risks", token)
    assert api(sandbox, "/risks", token).status_code == 200


def test_truncated_body_is_cut_json(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(truncate=1)
    r = api(sandbox, "/risks", token)
    assert r.status_code == 200 and r.content.startswith(b"[")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_empty_body(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(empty=1)
    r = api(sandbox, "/user/myDetails", token)
    assert (r.status_code, r.content) == (200, b"")


def test_html_error_page(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(html=1, html_status=502)
    r = api(sandbox, "/risks", token)
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html") and b"<html>" in r.content


def test_hang_delays_the_answer(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(hang=1, hang_seconds=2)
    with pytest.raises(httpx.ReadTimeout):
        api(sandbox, "/user/myDetails", token, timeout=0.3)


def test_latency_is_added(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(latency_ms=300)
    r = api(sandbox, "/version")
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.3


def test_token_dies_after_n_requests_although_exp_is_later(sandbox: SandboxServer) -> None:
    sandbox.set_faults(token_dies_after=2)
    token = id_token(sandbox, SINGLE_REFRESH_TOKEN)
    codes = [api(sandbox, "/user/myDetails", token).status_code for _ in range(3)]
    assert codes == [200, 200, 401]


def test_schema_drift_added_and_changed_type(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(drift="added")
    row = api(sandbox, "/risks", token).json()[0]
    assert "RiskRegion" in row and isinstance(row["labels"], list)
    sandbox.set_faults(drift="changed_type")
    rows = api(sandbox, "/risks", token).json()
    assert all(isinstance(r["IsFacility"], str) for r in rows)


def test_duplicate_rows_and_empty_list(sandbox: SandboxServer) -> None:
    token = id_token(sandbox)
    mu = SUMO.memberships[2]
    plain = api(sandbox, "/risks", token, mu.user_id).json()
    sandbox.set_faults(duplicate_rows=4)
    duplicated = api(sandbox, "/risks", token, mu.user_id).json()
    assert len(duplicated) == len(plain) + 4 and len({r["id"] for r in duplicated}) == len(plain)
    sandbox.set_faults(empty_list_for=mu.company_id)
    assert api(sandbox, "/risks", token, mu.user_id).json() == []


def test_faults_can_target_one_path(sandbox: SandboxServer, token: str) -> None:
    sandbox.set_faults(error_burst=1, only="/api/risks")
    assert api(sandbox, "/user/myDetails", token).status_code == 200
    assert api(sandbox, "/risks", token).status_code == 503


def test_unknown_fault_is_refused(sandbox: SandboxServer) -> None:
    r = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"earthquake": 1})
    assert r.status_code == 400 and "earthquake" in r.json()["reason"]
