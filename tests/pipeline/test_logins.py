"""Several logins in one warehouse (``WHITESPACE_LOGINS``): each login's organisations are partitions that
name it, each login keeps its own token, and a login whose token dies fails its own partitions with the
message that says which variable to renew, while the other logins sync."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from pipelines import config
from pipelines.app.sync import _failure, sync
from pipelines.defs import resources
from pipelines.defs.build import build
from pipelines.defs.partitions import organisations_partitions, partition_key
from sandbox import SINGLE_REFRESH_TOKEN, SUMO_REFRESH_TOKEN
from sandbox.world import USERS
from tests.pipeline.conftest import SUMO_IDS

SINGLE_ID = USERS[1].memberships[0].user_id
LOGINS = {"sumo": SUMO_REFRESH_TOKEN, "single": SINGLE_REFRESH_TOKEN}
KEYS = {*(partition_key("sumo", mu) for mu in SUMO_IDS), partition_key("single", SINGLE_ID)}


def test_logins_are_read_from_their_own_variables_and_checked() -> None:
    env = {"WHITESPACE_LOGINS": "acme, north_2", "WHITESPACE_LOGIN_ACME_REFRESH_TOKEN": "t1",
           "WHITESPACE_LOGIN_NORTH_2_REFRESH_TOKEN": "t2", "WHITESPACE_LOGIN_NORTH_2_USER_NAME": "Sam Sumo"}
    assert config.login_names(env) == ["acme", "north_2"]
    assert config.per_login_variables_set("north_2", env) == {
        "refresh_token": "WHITESPACE_LOGIN_NORTH_2_REFRESH_TOKEN", "user_name": "WHITESPACE_LOGIN_NORTH_2_USER_NAME"}
    assert set(config.secret_values(env)) == {"t1", "t2"}
    for bad, says in ((dict(env, WHITESPACE_LOGINS="Acme"), "a lower-case word"),
                      (dict(env, WHITESPACE_LOGINS="acme,acme"), "names a login twice"),
                      (dict(env, WHITESPACE_REFRESH_TOKEN="t0"), "both set")):
        with pytest.raises(config.ConfigError, match=says):
            config.login_names(bad)
    with pytest.raises(config.ConfigError, match="WHITESPACE_LOGIN_NORTH_2_REFRESH_TOKEN is not set"):
        config.per_login_variables_set("north_2", {"WHITESPACE_LOGINS": "north_2"})


def test_each_token_is_wired_by_its_variable_name_never_its_value(monkeypatch) -> None:
    for name, value in (("SYNC_URL", "https://platform.example/sync"), ("BUCKET", "whitespace"),
                        ("API_URL", "https://platform.example/api"), ("LOGINS", "acme,north")):
        monkeypatch.setenv(f"WHITESPACE_{name}", value)
    monkeypatch.setenv("WHITESPACE_LOGIN_ACME_REFRESH_TOKEN", "acme-secret-token")
    monkeypatch.setenv("WHITESPACE_LOGIN_NORTH_REFRESH_TOKEN", "north-secret-token")
    job = build(resources.from_environment()).resolve_job_def("sync_organisation")
    shown = str(job.resource_defs["whitespace"].config_schema.default_value)
    assert "WHITESPACE_LOGIN_ACME_REFRESH_TOKEN" in shown and "WHITESPACE_LOGIN_NORTH_REFRESH_TOKEN" in shown
    assert "secret-token" not in shown
    whitespace = resources.from_environment()["whitespace"].process_config_and_initialize()
    assert whitespace.settings("north").refresh_token.reveal() == "north-secret-token"
    with pytest.raises(config.ConfigError, match="No login named 'south'"):
        whitespace.settings("south")
    with pytest.raises(config.ConfigError, match="names no login"):
        whitespace.settings("")


def _sync(pipeline, instance: dg.DagsterInstance) -> tuple[list, list[str]]:
    lines: list[str] = []
    outcomes = sync(instance, build(resources.for_sandbox(pipeline.server, pipeline.warehouse, logins=LOGINS)),
                    log=lines.append)
    return outcomes, lines


def test_two_logins_sync_into_one_warehouse_and_a_dead_one_fails_only_its_own(pipeline, tmp_path) -> None:
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:  # the schedule needs a stored one
        _two_logins_then_a_dead_one(pipeline, instance)
        _the_schedule_runs_the_dead_logins_partitions_so_they_fail(pipeline, instance)


def _two_logins_then_a_dead_one(pipeline, instance: dg.DagsterInstance) -> None:
    outcomes, _ = _sync(pipeline, instance)
    assert all(o.ok for o in outcomes), outcomes
    assert set(instance.get_dynamic_partitions(organisations_partitions.name)) == KEYS
    seen = dict(pipeline.query("SELECT user_id, count(*) FROM risk_visibility GROUP BY ALL"))
    assert set(seen) == {*SUMO_IDS, SINGLE_ID}
    assert {"GAILBKR", "ATLASBKR"} <= {r[0] for r in pipeline.query("SELECT company_id FROM organisations")}

    # the single-organisation login's token is revoked; the platform moves on for everyone
    pipeline.server.admin("revoke", refresh_token=SINGLE_REFRESH_TOKEN)
    pipeline.server.advance(changed_fraction=0.05, new_roots=3)
    outcomes, lines = _sync(pipeline, instance)
    by_key = {o.key: o for o in outcomes if o.key}
    dead = by_key[partition_key("single", SINGLE_ID)]
    assert not dead.ok and dead.note.startswith("RefreshTokenRejected")
    assert "WHITESPACE_LOGIN_SINGLE_REFRESH_TOKEN" in dead.note and "User Profile" in dead.note
    assert all(by_key[partition_key("sumo", mu)].ok for mu in SUMO_IDS), outcomes
    assert [o.label for o in outcomes if not o.key][-2:] == ["MI report", "marts"]
    assert all(o.ok for o in outcomes if not o.key)
    assert any("Login 'single' failed" in line for line in lines), lines
    assert by_key["single:"].label == "login single" and not by_key["single:"].ok
    assert not any(SINGLE_REFRESH_TOKEN in line or SUMO_REFRESH_TOKEN in line for line in lines)
    # the live login's organisations took the platform's change; the dead one's rows stay as they were
    after = dict(pipeline.query("SELECT user_id, count(*) FROM risk_visibility GROUP BY ALL"))
    assert after[SINGLE_ID] == seen[SINGLE_ID]
    assert sum(after[mu] for mu in SUMO_IDS) > sum(seen[mu] for mu in SUMO_IDS)
    assert KEYS == set(instance.get_dynamic_partitions(organisations_partitions.name)), "nothing retired"
    truth = {mu: len(list(pipeline.server.world.root_indexes(company)))
             for mu, company in ((m.user_id, m.company_id) for m in USERS[0].memberships)}
    landed = dict(pipeline.query("SELECT user_id, count(DISTINCT root_id) FROM risk_visibility v "
                                 "JOIN risks USING (risk_id) GROUP BY ALL"))
    assert {mu: landed[mu] for mu in SUMO_IDS} == truth


def _the_schedule_runs_the_dead_logins_partitions_so_they_fail(pipeline, instance: dg.DagsterInstance) -> None:
    """The next morning's tick: the live login's organisations are current, the dead login's partition
    gets a run, which fails with the variable to renew."""
    from pipelines.defs.automation import daily_sync

    defs = build(resources.for_sandbox(pipeline.server, pipeline.warehouse, logins=LOGINS))
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2026, 1, 5, 6, tzinfo=dt.UTC),
                                   repository_def=defs.get_repository_def(), resources=defs.resources) as context:
        tick = daily_sync.evaluate_tick(context)
    assert [r.partition_key for r in tick.run_requests] == [partition_key("single", SINGLE_ID)]
    result = defs.resolve_job_def("sync_organisation").execute_in_process(
        instance=instance, partition_key=tick.run_requests[0].partition_key, raise_on_error=False)
    assert not result.success
    assert "set it as WHITESPACE_LOGIN_SINGLE_REFRESH_TOKEN" in _failure(result)
    assert KEYS == set(instance.get_dynamic_partitions(organisations_partitions.name))
