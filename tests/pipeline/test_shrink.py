"""A suspicious answer does not wipe data: a list that drops more of an organisation's risks than
WHITESPACE_MAX_SHRINK allows is refused, with a message that says how to accept it."""

from __future__ import annotations

import pytest

from pipelines.app.sync import sync
from pipelines.config import WarehouseConfig
from pipelines.warehouse import risks
from tests.pipeline.conftest import SUMO_IDS

CARRIER = SUMO_IDS[2]


def visible(pipeline, user_id: str = CARRIER) -> int:
    return pipeline.query("SELECT count(*) FROM risk_visibility WHERE user_id = ?", [user_id])[0][0]


def test_a_list_that_loses_most_risks_is_refused_and_accepted_when_asked(pipeline) -> None:
    outcomes = sync(pipeline.instance, pipeline.defs, log=lambda *_: None)
    assert all(o.ok for o in outcomes)
    kept = visible(pipeline)
    pipeline.server.advance(removed_fraction=0.8, changed_fraction=0.0, new_roots=0)
    lines: list[str] = []
    outcomes = sync(pipeline.instance, pipeline.defs, log=lines.append)
    refused = {o.label: o.note for o in outcomes if not o.ok}
    assert refused and all("SuspiciousShrink" in note and "--accept-shrink" in note for note in refused.values())
    assert visible(pipeline) == kept, "nothing was changed"
    outcomes = sync(pipeline.instance, pipeline.defs, log=lines.append, accept_shrink=True)
    assert all(o.ok for o in outcomes), outcomes
    assert 0 < visible(pipeline) < kept * 0.5


def test_a_small_shrink_is_applied_and_the_share_is_configurable(pipeline) -> None:
    outcomes = sync(pipeline.instance, pipeline.defs, log=lambda *_: None)
    assert all(o.ok for o in outcomes)
    kept = visible(pipeline)
    pipeline.server.advance(removed_fraction=0.2, changed_fraction=0.0, new_roots=0)
    strict = pipeline.bind(WarehouseConfig(path=pipeline.db_path, max_shrink=0.05))
    assert not all(o.ok for o in sync(pipeline.instance, strict, log=lambda *_: None)), "20% is over 5%"
    assert visible(pipeline) == kept
    assert all(o.ok for o in sync(pipeline.instance, pipeline.defs, log=lambda *_: None)), "20% is under 50%"
    assert visible(pipeline) < kept


def test_the_loader_refuses_without_touching_anything(tmp_path) -> None:
    from pipelines.warehouse import db
    from tests.pipeline.test_loader import ROOT_A, land

    rows = [{"id": f"{ROOT_A}::QR{n}", "rev": "1-a"} for n in range(1, 11)]
    with db.session(tmp_path / "w.duckdb") as conn:
        risks.load_list(conn, land(tmp_path, rows), "a.json")
        with pytest.raises(risks.SuspiciousShrink, match="from 10 to 0 risks"):
            risks.load_list(conn, land(tmp_path, []), "b.json", max_shrink=0.5)
        assert conn.execute("SELECT count(*) FROM risk_visibility").fetchone()[0] == 10
        risks.load_list(conn, land(tmp_path, rows[:6]), "c.json", max_shrink=0.5)
        assert conn.execute("SELECT count(*) FROM risk_visibility").fetchone()[0] == 6
