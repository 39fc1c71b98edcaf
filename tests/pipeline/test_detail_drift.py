"""Contract and line-set payloads get the risk list's drift detection: a renamed field is reported
(schema_drift, a WARN check), never a silent NULL."""

from __future__ import annotations

from tests.pipeline.conftest import SUMO_IDS, check_results


def test_a_renamed_contract_or_line_field_is_reported(pipeline) -> None:
    pipeline.reference()
    result = pipeline.sync(SUMO_IDS[2])
    assert check_results(result)["contracts_schema_drift"], "the sandbox's own payloads are known"
    pipeline.server.set_faults(contract_drift="renamed")
    pipeline.server.advance(changed_fraction=0.5, new_roots=0)  # roots to fetch again
    result = pipeline.sync(SUMO_IDS[2])
    assert result.success and check_results(result)["contracts_schema_drift"] is False
    drift = set(pipeline.query("SELECT endpoint, field, kind FROM schema_drift WHERE endpoint <> '/risks'"))
    assert {("/risks/{riskID}", "control.placingStatus", "new_field"),
            ("/risks/{riskID}", "control.status", "missing_field"),
            ("/lines/{rootID}/combinedSets", "impressions.writtenLine", "new_field"),
            ("/lines/{rootID}/combinedSets", "impressions.writtenLinePercentageString", "missing_field")} <= drift
