"""Retries and clear errors for every fault the sandbox can inject."""

from __future__ import annotations

import json

import pytest

from pipelines.client import ApiError, RetryPolicy, TransportError, WhitespaceClient
from sandbox import SINGLE_REFRESH_TOKEN, SandboxServer
from tests.conftest import settings_for

RECOVERABLE = [
    ({"rate_limit": 2, "retry_after": "4"}, 2),
    ({"error_burst": 3, "error_status": 502}, 3),
    ({"error_burst": 3, "error_status": 503}, 3),
    ({"error_burst": 3, "error_status": 504}, 3),
    ({"drop": 2}, 2),
    ({"truncate": 2}, 2),
    ({"html": 2, "html_status": 502}, 2),
    ({"html": 1, "html_status": 200}, 1),
    ({"empty": 1}, 1),
]


@pytest.mark.parametrize(("faults", "failures"), RECOVERABLE, ids=[next(iter(f)) + str(f.get("error_status", f.get("html_status", ""))) for f, _ in RECOVERABLE])
def test_transient_faults_are_retried_until_success(sandbox, single_client, waits, tmp_path, faults, failures) -> None:
    expected = single_client.risks()
    sandbox.set_faults(**faults)
    download = single_client.download_risks(tmp_path / "risks.json")
    assert download.items == len(expected)
    assert json.loads(download.path.read_bytes()) == expected
    assert len(waits) == failures
    if "retry_after" in faults:
        assert waits == [4.0, 4.0]


def test_parsed_answers_are_retried_too(sandbox, single_client, waits) -> None:
    sandbox.set_faults(truncate=1, only="/api/user/myDetails")
    assert single_client.my_details()["companyId"] == "ATLASBKR"
    assert len(waits) == 1


def test_timeouts_are_retried(sandbox: SandboxServer, waits) -> None:
    settings = settings_for(sandbox, SINGLE_REFRESH_TOKEN, timeout=0.5)
    sandbox.set_faults(hang=1, hang_seconds=1.5, only="/api/")
    with WhitespaceClient(settings) as c:
        assert c.my_details()["companyId"] == "ATLASBKR"
    assert len(waits) == 1


def test_persistent_failure_ends_with_a_clear_error(sandbox, waits) -> None:
    sandbox.set_faults(error_burst=100, error_status=503, only="/api/risks")
    with WhitespaceClient(settings_for(sandbox, SINGLE_REFRESH_TOKEN), RetryPolicy(max_attempts=3)) as c:
        with pytest.raises(ApiError) as info:
            c.risks()
    err = info.value
    assert err.status == 503 and err.transient and len(waits) == 2
    assert f"{sandbox.api_url}/risks" in str(err) and "temporary failure" in str(err)


def test_persistent_drops_end_with_a_transport_error(sandbox, waits) -> None:
    sandbox.set_faults(drop=100, only="/api/risks")
    with WhitespaceClient(settings_for(sandbox, SINGLE_REFRESH_TOKEN), RetryPolicy(max_attempts=2)) as c:
        with pytest.raises(TransportError, match="connection failed"):
            c.risks()


def test_html_page_error_names_status_url_and_excerpt(sandbox, waits) -> None:
    sandbox.set_faults(html=100, html_status=502, only="/api/risks")
    with WhitespaceClient(settings_for(sandbox, SINGLE_REFRESH_TOKEN), RetryPolicy(max_attempts=2)) as c:
        with pytest.raises(ApiError) as info:
            c.risks()
    text = str(info.value)
    assert "HTTP 502" in text and "/api/risks" in text and "Bad Gateway" in text


def test_fatal_errors_are_not_retried(sandbox, single_client, waits) -> None:
    with pytest.raises(ApiError) as info:
        single_client.risk_text("ICFFFFFFFF-0000-4000-8000-000000000000::FO")
    assert info.value.status == 400 and not info.value.transient and waits == []
    assert "Risk not found" in str(info.value)


def test_downloads_are_atomic(sandbox, single_client, waits, tmp_path) -> None:
    dest = tmp_path / "landing" / "risks.json"
    sandbox.set_faults(truncate=100, only="/api/risks")
    single_client.policy = RetryPolicy(max_attempts=2)
    with pytest.raises(ApiError):
        single_client.download_risks(dest)
    assert list(dest.parent.iterdir()) == [], "nothing half-written is left behind"


def test_fan_out_holds_a_bounded_window_whatever_the_number_of_keys(sumo_client) -> None:
    """A large book fans out to hundreds of thousands of calls: a call starts only when it is within
    the look-ahead of the one being yielded, and no answer is kept once yielded (memory stays flat)."""
    import threading
    import weakref

    from pipelines.client.client import LOOK_AHEAD

    class Answer:
        pass

    window = LOOK_AHEAD * sumo_client.settings.max_concurrency
    alive: weakref.WeakSet = weakref.WeakSet()
    started = [0]
    lock = threading.Lock()

    def call(key: int) -> Answer:
        with lock:
            started[0] += 1
        answer = Answer()
        alive.add(answer)
        return answer

    keys = range(20 * window)
    most_started = most_alive = 0
    for consumed, (key, answer, exc) in enumerate(sumo_client.fan_out(call, keys), start=1):
        assert key == consumed - 1 and exc is None and isinstance(answer, Answer)
        del answer
        with lock:
            most_started = max(most_started, started[0] - consumed)
        most_alive = max(most_alive, len(alive))
    assert started[0] == len(keys)
    assert most_started <= window, "calls started beyond the look-ahead"
    assert most_alive <= window + 1, f"{most_alive} answers held at once (bound {window + 1})"


def test_fan_out_shares_one_token(sandbox, sumo_client) -> None:
    mu = sumo_client.discover_organisations()[0].user_id
    bound = sumo_client.for_user(mu)
    ids = [r["id"] for r in bound.risks()[:40]]
    results = list(bound.fan_out(bound.risk_text, ids))
    assert [k for k, _, _ in results] == ids and all(e is None and json.loads(v)["_id"] == k for k, v, e in results)
    assert sumo_client.tokens.refresh_count == 1


def test_nested_fan_outs_share_the_logins_concurrency(sandbox, sumo_client) -> None:
    """Organisations fetched at once, each fetching its roots at once (a sync's details): the login never
    has more than ``max_concurrency`` requests in flight, however the fan-outs nest."""
    import contextlib
    import threading

    in_flight, most = [0], [0]
    lock = threading.Lock()
    stream = sumo_client._http.stream

    @contextlib.contextmanager
    def counted(*args, **kwargs):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            with stream(*args, **kwargs) as response:
                yield response
        finally:
            with lock:
                in_flight[0] -= 1

    sumo_client._http.stream = counted
    sandbox.set_faults(latency_ms=5)  # answers that take a moment, so that requests overlap
    organisations = [o.user_id for o in sumo_client.discover_organisations()]

    def organisation(mu: str) -> int:
        bound = sumo_client.for_user(mu)
        ids = [r["id"] for r in bound.risks()[:3 * sumo_client.settings.max_concurrency]]
        return sum(1 for _ in bound.fan_out(bound.risk_text, ids))  # carrier instances answer 400: still requests

    fetched = list(sumo_client.fan_out(organisation, organisations))
    assert len(organisations) > 1 and all(exc is None and n == 3 * sumo_client.settings.max_concurrency
                                          for _, n, exc in fetched)
    assert most[0] <= sumo_client.settings.max_concurrency, f"{most[0]} requests at once"
