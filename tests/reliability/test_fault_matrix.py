"""Every fault the platform can throw at a sync, each followed by a look at the warehouse."""

from __future__ import annotations

import pytest

from pipelines.client import retry
from sandbox import SUMO_REFRESH_TOKEN
from tests.pipeline.conftest import SUMO_IDS, check_results
from tests.reliability.conftest import fingerprint, integrity_problems

CARRIER = SUMO_IDS[2]  # the smallest organisation: quick, and its risks are shared with the others

RECOVERED = {
    "token dies early": {"token_dies_after": 40},
    "429 storm with Retry-After": {"rate_limit": 12, "retry_after": "2"},
    "5xx burst": {"error_burst": 5, "error_status": 503},
    "500 burst": {"error_burst": 4, "error_status": 500},
    "dropped connections": {"drop": 5},
    "truncated JSON": {"truncate": 4},
    "HTML error page": {"html": 4, "html_status": 502},
    "empty bodies": {"empty": 3},
}


@pytest.fixture
def no_waiting(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(retry, "sleep", waits.append)
    return waits


def synced(pipeline, user_id=CARRIER):
    result = pipeline.sync(user_id, raise_on_error=False)
    return result


@pytest.mark.parametrize("faults", RECOVERED.values(), ids=RECOVERED.keys())
def test_recoverable_faults_leave_the_same_warehouse_as_a_clean_run(pipeline, truth, no_waiting, faults) -> None:
    pipeline.reference()
    refreshes = pipeline.server.stats()["refreshes"]
    pipeline.server.set_faults(**faults)
    result = synced(pipeline)
    assert result.success
    assert all(check_results(result).values()), check_results(result)
    pipeline.server.admin("reset")
    rows = set(pipeline.query("SELECT r.risk_id, r.rev FROM risks r JOIN risk_visibility v USING (risk_id) "
                              "WHERE v.user_id = ?", [CARRIER]))
    assert rows == truth(CARRIER)
    assert integrity_problems(pipeline.db_path) == []
    if "token_dies_after" in faults:
        assert pipeline.server.stats()["refreshes"] - refreshes >= 3, "each dying token was renewed"
    else:
        assert no_waiting, "the fault was met and waited out"
    if "retry_after" in faults:
        assert 2.0 in no_waiting


def test_token_expiry_by_exp_mid_run(tmp_path, monkeypatch, no_waiting) -> None:
    from sandbox import SandboxServer
    from tests.pipeline.conftest import Pipeline

    with SandboxServer(seed=11, token_lifetime=2) as server:
        pipeline = Pipeline(server, tmp_path, monkeypatch)
        pipeline.reference()
        server.set_faults(latency_ms=3)  # the run outlives several two-second tokens
        assert pipeline.sync(CARRIER).success
        assert server.stats()["refreshes"] >= 3
        assert integrity_problems(pipeline.db_path) == []


def test_a_rejected_refresh_token_fails_the_run_and_leaves_the_warehouse(pipeline, no_waiting) -> None:
    pipeline.start_from("synced")
    before = fingerprint(pipeline.db_path)
    pipeline.server.admin("revoke", refresh_token=SUMO_REFRESH_TOKEN)
    pipeline.server.advance(changed_fraction=0.5)
    result = synced(pipeline)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    text = failure.message + "".join(c.message for c in [failure.cause] if c)
    assert "User Profile" in text
    assert fingerprint(pipeline.db_path) == before


def test_the_sumo_user_id_error_is_clear_and_changes_nothing(pipeline, no_waiting) -> None:
    pipeline.start_from("synced")
    before = fingerprint(pipeline.db_path)
    wrong = "MU00000000-0000-4000-8000-000000000000"
    pipeline.instance.add_dynamic_partitions("organisations", [wrong])
    result = synced(pipeline, wrong)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert wrong in failure.message + (failure.cause.message if failure.cause else "")
    assert fingerprint(pipeline.db_path) == before


def test_persistent_outage_fails_cleanly(pipeline, no_waiting) -> None:
    pipeline.start_from("synced")
    before = fingerprint(pipeline.db_path)
    pipeline.server.set_faults(error_burst=10_000, error_status=503, only="/api/risks")
    assert not synced(pipeline).success
    assert fingerprint(pipeline.db_path) == before


def test_timeouts(pipeline, no_waiting) -> None:
    pipeline.defs = pipeline.bind(timeout_seconds="0.5")
    pipeline.reference()
    pipeline.server.set_faults(hang=2, hang_seconds=1.0, only="/api/risks")
    assert synced(pipeline).success
    assert integrity_problems(pipeline.db_path) == []


def test_an_empty_list_is_refused_once_then_empties_only_that_organisation(pipeline, no_waiting) -> None:
    pipeline.start_from("synced")
    others = pipeline.query("SELECT user_id, count(*) FROM risk_visibility WHERE user_id <> ? GROUP BY 1 ORDER BY 1",
                            [CARRIER])
    before = fingerprint(pipeline.db_path)
    pipeline.server.set_faults(empty_list_for="MCNEILLIEUWR")
    refused = synced(pipeline)
    assert not refused.success and fingerprint(pipeline.db_path) == before, "a suspicious answer wipes nothing"
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert "--accept-shrink" in failure.step_failure_data.error.cause.message
    result = synced(pipeline)  # the same answer twice in a row: the platform means it
    assert result.success and all(check_results(result).values())
    assert pipeline.query("SELECT count(*) FROM risk_visibility WHERE user_id = ?", [CARRIER]) == [(0,)]
    assert pipeline.query("SELECT user_id, count(*) FROM risk_visibility WHERE user_id <> ? GROUP BY 1 ORDER BY 1",
                          [CARRIER]) == others
    assert integrity_problems(pipeline.db_path) == []


def test_duplicate_ids_in_one_payload(pipeline, truth, no_waiting) -> None:
    pipeline.reference()
    pipeline.server.set_faults(duplicate_rows=25)
    assert synced(pipeline).success
    rows = set(pipeline.query("SELECT risk_id, rev FROM risks"))
    assert rows == truth(CARRIER) and integrity_problems(pipeline.db_path) == []


@pytest.mark.parametrize("drift", ["added", "changed_type"])
def test_schema_drift(pipeline, truth, no_waiting, drift) -> None:
    pipeline.reference()
    pipeline.server.set_faults(drift=drift)
    result = synced(pipeline)
    checks = check_results(result)
    assert result.success and checks.pop("risks_schema_drift") is False, "drift is a WARN check: alerted, loaded"
    assert all(checks.values()), checks
    assert set(pipeline.query("SELECT risk_id, rev FROM risks")) == truth(CARRIER)
    assert pipeline.query("SELECT count(*) FROM schema_drift")[0][0] > 0
    assert integrity_problems(pipeline.db_path) == []


def test_hostile_values(pipeline, truth, no_waiting) -> None:
    from sandbox.documents import HOSTILE_NAME

    pipeline.reference()
    pipeline.server.set_faults(drift="hostile")
    result = synced(pipeline)
    checks = check_results(result)
    assert result.success and checks.pop("risks_schema_drift") is False, "the hostile fields are new: reported"
    assert all(checks.values()), checks
    assert set(pipeline.query("SELECT risk_id, rev FROM risks")) == truth(CARRIER)
    [(name,)] = pipeline.query("SELECT insured_name FROM risks WHERE insured_name LIKE 'Robert%' LIMIT 1")
    assert name.startswith(HOSTILE_NAME.strip()[:40]) and len(name) > 20_000
    assert pipeline.query("SELECT count(*) FROM risks WHERE umr = '12345678'")[0][0] > 0
    assert pipeline.query("SELECT count(*) FROM risks WHERE status IS NULL")[0][0] > 0
    assert pipeline.query("SELECT count(*) FROM risks")[0][0] == len(truth(CARRIER))
    assert integrity_problems(pipeline.db_path) == []
