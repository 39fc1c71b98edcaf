"""A dead login stops the work: the client never sends a rejected renewable token or UserID again,
and a fan-out over many roots raises the actionable error instead of collecting one failure per root."""

from __future__ import annotations

import pytest

from pipelines.client import InvalidUserId, RefreshTokenRejected, WhitespaceClient
from pipelines.extract import details
from pipelines.landing import raw
from sandbox import SUMO_REFRESH_TOKEN
from sandbox.world import USERS
from tests.conftest import settings_for

BROKER = USERS[0].memberships[0].user_id
REFRESH = "GET /sync/{bucket}/_oidc_refresh"


def test_a_token_rejected_during_a_fan_out_stops_it_after_one_refresh(sandbox, waits, tmp_path) -> None:
    with WhitespaceClient(settings_for(sandbox)) as client:
        bound = client.for_user(BROKER)
        listing = raw.record(raw.download_risk_list(bound, tmp_path, BROKER), tmp_path, BROKER, "/risks")
        sandbox.set_faults(token_dies_after=3)  # the next id_token stops working after three requests
        client.tokens.invalidate(client.tokens.generation)
        client.version()
        sandbox.admin("revoke", refresh_token=SUMO_REFRESH_TOKEN)  # and the login is gone
        before = sandbox.stats().get(REFRESH, 0)
        with pytest.raises(RefreshTokenRejected, match="User Profile"):
            details.fetch(bound, tmp_path, listing)
        assert sandbox.stats().get(REFRESH, 0) - before == 1, "one refused refresh, not one per root"
        with pytest.raises(RefreshTokenRejected):
            client.version()
        assert sandbox.stats().get(REFRESH, 0) - before == 1, "a rejected token is never sent again"
    assert not details.read_index(tmp_path, BROKER), "nothing is marked fetched"


def test_a_refused_user_id_is_not_sent_again(sandbox, waits) -> None:
    stranger = "MU00000000-0000-4000-8000-000000000000"
    with WhitespaceClient(settings_for(sandbox)) as client:
        bound = client.for_user(stranger)
        with pytest.raises(InvalidUserId, match="not one of the MU ids"):
            bound.risks()
        sent = sandbox.stats().get("GET /api/risks", 0)
        with pytest.raises(InvalidUserId):
            bound.risks()
        assert sandbox.stats().get("GET /api/risks", 0) == sent
        assert client.for_user(BROKER).risks(), "the login's own organisations still answer"
