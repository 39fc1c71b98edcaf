"""What disappears is accounted for: an organisation that leaves the login is retired (its rows stop
being current, kept in ``risks_gone``; no run fails for ever on it), and the sync says so."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipelines.app.sync import sync
from pipelines.defs.automation import daily_sync
from pipelines.defs.partitions import organisations_partitions
from tests.pipeline.conftest import SUMO_IDS

CARRIER = SUMO_IDS[2]


def test_an_organisation_that_leaves_the_login_is_retired(pipeline, tmp_path) -> None:
    (tmp_path / "dagster").mkdir()
    pipeline.instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))  # the schedule needs a stored one
    assert all(o.ok for o in sync(pipeline.instance, pipeline.defs, log=lambda *_: None))
    only_carrier = pipeline.query("""SELECT count(*) FROM risk_visibility v WHERE user_id = ? AND risk_id NOT IN
                                     (SELECT risk_id FROM risk_visibility WHERE user_id <> ?)""", [CARRIER, CARRIER])[0][0]
    assert only_carrier > 0
    pipeline.server.admin("leave", user_id=CARRIER)
    lines: list[str] = []
    outcomes = sync(pipeline.instance, pipeline.defs, log=lines.append)
    assert all(o.ok for o in outcomes), (outcomes, lines)
    assert any(line.startswith(f"Retired {CARRIER}") for line in lines), lines
    assert CARRIER not in pipeline.instance.get_dynamic_partitions(organisations_partitions.name)
    assert pipeline.query("SELECT count(*) FROM risk_visibility WHERE user_id = ?", [CARRIER]) == [(0,)]
    gone = pipeline.query("SELECT count(*), min(gone_because) FROM risks_gone")[0]
    assert gone[0] == only_carrier and CARRIER in gone[1], "kept, with why, not silently deleted"
    assert pipeline.query("""SELECT count(*) FROM risk_history WHERE valid_to IS NULL
                             AND risk_id IN (SELECT risk_id FROM risks_gone)""") == [(0,)], "their history is closed"
    when = dt.datetime(2026, 1, 5, 6, tzinfo=dt.UTC)
    with dg.build_schedule_context(instance=pipeline.instance, scheduled_execution_time=when,
                                   repository_def=pipeline.defs.get_repository_def(),
                                   resources=pipeline.defs.resources) as context:
        tick = daily_sync.evaluate_tick(context)
    assert not tick.run_requests and "nothing changed in 2 organisations" in tick.skip_message


def test_contracts_of_roots_nobody_sees_are_kept_not_deleted(pipeline) -> None:
    pipeline.start_from("synced")
    contracts = pipeline.query("SELECT count(*) FROM contracts")[0][0]
    pipeline.server.advance(changed_fraction=0.0, new_roots=0, removed_fraction=0.2)
    for mu in SUMO_IDS:
        pipeline.sync(mu)
    now = pipeline.query("SELECT count(*) FROM contracts")[0][0]
    gone = pipeline.query("SELECT count(*) FROM contracts_gone")[0][0]
    assert gone > 0 and now + gone == contracts
    assert pipeline.query("SELECT count(*) FROM contracts_gone WHERE root_id IN (SELECT root_id FROM risks)") == [(0,)]


def test_marts_built_before_an_organisation_left_are_not_current(pipeline) -> None:
    """The marts counted the departed organisation's placements: the warehouse's record of what they were
    built from no longer matches once it is retired, whatever else changed (the sync then rebuilds them)."""
    from pipelines.warehouse import db, risks, state

    pipeline.start_from("marts")
    assert state.read(pipeline.warehouse, SUMO_IDS).marts_built is not None, "built from every load"
    with db.session(pipeline.warehouse) as conn:
        risks.retire(conn, CARRIER)
    assert state.read(pipeline.warehouse, SUMO_IDS[:2]).marts_built is None
