"""Token lifecycle against the sandbox: expiry by exp, early death, one refresh for many threads."""

from __future__ import annotations

import threading
import time

import pytest

from pipelines.client import RefreshTokenRejected, WhitespaceClient
from pipelines.client.auth import MAX_MARGIN, TokenManager, jwt_claims
from sandbox import BUCKET, SINGLE_REFRESH_TOKEN, SandboxServer
from tests.conftest import settings_for


def _exp(tm: TokenManager) -> float:
    """The ``exp`` of the token the manager holds."""
    return float(jwt_claims(tm._token.reveal())["exp"])


def test_token_is_renewed_before_exp(waits, clock) -> None:
    with SandboxServer(token_lifetime=60) as server, WhitespaceClient(settings_for(server, SINGLE_REFRESH_TOKEN)) as c:
        c.version()
        c.my_details()
        assert server.stats()["refreshes"] == 1
        clock(60.5)  # the token has expired
        c.my_details()
        stats = server.stats()
    assert stats["refreshes"] == 2
    assert "GET /api/user/myDetails" in stats and stats["GET /api/user/myDetails"] == 2, "no request was refused"


def test_margin_scales_with_lifetime() -> None:
    with SandboxServer(token_lifetime=3600) as server:
        tm = TokenManager(server.sync_url, BUCKET, SINGLE_REFRESH_TOKEN)
        tm.current()
        assert _exp(tm) - tm._refresh_at == pytest.approx(MAX_MARGIN)
    with SandboxServer(token_lifetime=10) as server:
        tm = TokenManager(server.sync_url, BUCKET, SINGLE_REFRESH_TOKEN)
        tm.current()
        assert _exp(tm) - tm._refresh_at == pytest.approx(1.0)
    with SandboxServer(token_lifetime=1) as server:
        tm = TokenManager(server.sync_url, BUCKET, SINGLE_REFRESH_TOKEN)
        for _ in range(5):  # whatever is left of a one-second token, it is used before renewing
            tm.invalidate(tm.generation)
            tm.current()
            assert tm._refresh_at > time.time() or _exp(tm) <= time.time()


def test_token_that_dies_early_is_renewed_once_on_401(sandbox: SandboxServer, single_client: WhitespaceClient) -> None:
    sandbox.set_faults(token_dies_after=3)
    for _ in range(5):
        assert single_client.my_details()["companyId"] == "ATLASBKR"
    stats = sandbox.stats()
    assert stats["GET /api/user/myDetails"] == 6, "one request refused, then repeated once"
    assert single_client.tokens.refresh_count == 2


def test_sixteen_threads_on_an_expired_token_cause_one_refresh(waits) -> None:
    with SandboxServer(token_lifetime=2) as server, WhitespaceClient(settings_for(server, SINGLE_REFRESH_TOKEN)) as c:
        c.version()
        c.my_details()
        assert server.stats()["refreshes"] == 1
        time.sleep(2.05)
        barrier = threading.Barrier(16)
        errors: list[BaseException] = []

        def call() -> None:
            barrier.wait()
            try:
                c.my_details()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert server.stats()["refreshes"] == 2
        assert c.tokens.refresh_count == 2


def test_many_401s_for_one_token_cause_one_refresh(sandbox: SandboxServer) -> None:
    tm = TokenManager(sandbox.sync_url, BUCKET, SINGLE_REFRESH_TOKEN)
    _, generation = tm.current()
    barrier = threading.Barrier(16)

    def refused_then_retry() -> None:
        barrier.wait()
        tm.invalidate(generation)  # each thread saw its request refused with this token
        tm.current()

    threads = [threading.Thread(target=refused_then_retry) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tm.refresh_count == 2 and tm.generation == generation + 1


@pytest.mark.parametrize("legacy", [False, True])
def test_rejected_refresh_token_is_a_clear_error_and_not_retried(sandbox: SandboxServer, waits, legacy: bool) -> None:
    sandbox.set_faults(legacy_refresh_errors=legacy)
    sandbox.admin("revoke", refresh_token=SINGLE_REFRESH_TOKEN)
    with WhitespaceClient(settings_for(sandbox, SINGLE_REFRESH_TOKEN)) as c, pytest.raises(RefreshTokenRejected) as info:
        c.my_details()
    assert info.value.status == (401 if legacy else 500)
    assert "User Profile" in str(info.value) and "WHITESPACE_REFRESH_TOKEN" in str(info.value)
    assert sandbox.stats()["GET /sync/{bucket}/_oidc_refresh"] == 1
    assert waits == []


def test_sumo_401_never_refreshes(sandbox: SandboxServer, sumo_client: WhitespaceClient) -> None:
    from pipelines.client import InvalidUserId

    with pytest.raises(InvalidUserId):
        sumo_client.for_user(None).my_details()
    assert sumo_client.tokens.refresh_count == 1
