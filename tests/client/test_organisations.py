"""SUMO: discovering the organisations a login acts for, and clear errors when it cannot."""

from __future__ import annotations

import pytest

from pipelines.client import ConfigError, InvalidUserId, Settings, WhitespaceClient
from sandbox import SINGLE_REFRESH_TOKEN, SUMO_REFRESH_TOKEN
from sandbox.world import USERS
from tests.conftest import settings_for


def test_single_organisation_login_uses_my_details(single_client) -> None:
    orgs = single_client.discover_organisations()
    assert [(o.user_id, o.company_id) for o in orgs] == [(USERS[1].memberships[0].user_id, "ATLASBKR")]


def test_sumo_login_is_found_by_name_in_the_corporate_list(sandbox, waits) -> None:
    with WhitespaceClient(settings_for(sandbox, SUMO_REFRESH_TOKEN, user_name="  sam SUMO ")) as c:
        orgs = c.discover_organisations()
    assert {o.user_id for o in orgs} == {m.user_id for m in USERS[0].memberships}
    assert {o.company_id for o in orgs} == {"GAILBKR", "WHITESAILS", "MCNEILLIEUWR"}


def test_sumo_login_without_name_says_which_setting_to_add(sandbox, waits) -> None:
    with WhitespaceClient(settings_for(sandbox, SUMO_REFRESH_TOKEN, user_name=None)) as c:
        with pytest.raises(InvalidUserId, match="WHITESPACE_USER_NAME.*WHITESPACE_USER_IDS"):
            c.discover_organisations()


def test_unknown_name_is_a_config_error(sandbox, waits) -> None:
    with WhitespaceClient(settings_for(sandbox, SUMO_REFRESH_TOKEN, user_name="Nobody Here")) as c:
        with pytest.raises(ConfigError, match="Nobody Here"):
            c.discover_organisations()


def test_explicit_list_wins_and_needs_no_call(sandbox, waits) -> None:
    ids = [m.user_id for m in USERS[0].memberships[:2]]
    with WhitespaceClient(settings_for(sandbox, SUMO_REFRESH_TOKEN, user_ids=",".join(ids))) as c:
        assert [o.user_id for o in c.discover_organisations()] == ids
    assert "GET /api/user/myDetails" not in sandbox.stats()


def test_bound_client_sends_user_id_on_every_call(sumo_client) -> None:
    for m in USERS[0].memberships:
        assert sumo_client.for_user(m.user_id).my_details()["uniqueID"] == m.user_id


def test_wrong_mu_id_is_named_in_the_error(sumo_client) -> None:
    wrong = "MU99999999-9999-4999-8999-999999999999"
    with pytest.raises(InvalidUserId, match=wrong):
        sumo_client.for_user(wrong).risks()


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="WHITESPACE_BUCKET"):
        Settings.from_values("http://x/sync", "", "http://x/api", SINGLE_REFRESH_TOKEN)
    with pytest.raises(ConfigError, match="not an MU id"):
        Settings.from_values("http://x/sync", "b", "http://x/api", "t", user_ids="12345")

