"""Changes to child documents are found: a signed line set changes on its own (no placing revision in
``/api/risks`` moves), the activity feed names its root, and the next sync's ``market_lines`` shows it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipelines.app.sync import sync
from pipelines.config import WarehouseConfig
from sandbox import SandboxServer, documents
from tests.pipeline.conftest import SUMO_IDS, Pipeline

BROKER = SUMO_IDS[0]


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    """A smaller sandbox: these tests sync several times each."""
    with SandboxServer(seed=11, scale=0.1) as server:
        yield Pipeline(server, tmp_path, monkeypatch)


def run(pipeline, defs=None, **options) -> str:
    """A sync; what it printed (one line per organisation, with why it ran)."""
    lines: list[str] = []
    outcomes = sync(pipeline.instance, defs or pipeline.defs, log=lines.append, **options)
    assert all(o.ok for o in outcomes), (outcomes, lines)
    return "\n".join(lines)


def signed_lines(pipeline) -> dict[tuple[str, str], Decimal]:
    rows = pipeline.query("SELECT root_id, carrier_company_id, signed_pct FROM market_lines WHERE set_type = 'signed'")
    return {(root, carrier): pct for root, carrier, pct in rows}


def truth(pipeline, roots) -> dict[tuple[str, str], Decimal]:
    world = pipeline.server.world
    return {(r, c): s for r in roots for c, _w, s in documents.shares(world.find_root(r))}


def risk_lists(pipeline) -> dict[str, list]:
    from pipelines.client import WhitespaceClient
    from tests.conftest import settings_for

    with WhitespaceClient(settings_for(pipeline.server)) as client:
        return {mu: client.for_user(mu).risks() for mu in SUMO_IDS}


def latest(pipeline, table: str) -> dict:
    """The metadata of the broker's latest materialization of ``table``."""
    import dagster as dg

    [record] = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(table), asset_partitions=[BROKER]), limit=1).records
    return record.asset_materialization.metadata


def test_a_line_signed_down_alone_reaches_market_lines(pipeline) -> None:
    run(pipeline)
    before = signed_lines(pipeline)
    lists = risk_lists(pipeline)
    pipeline.server.advance(changed_fraction=0.0, new_roots=0, lines_changed_fraction=0.3)
    assert risk_lists(pipeline) == lists, "no placing revision moved: the risk lists are the same"
    printed = run(pipeline)
    assert "contracts or lines changed (activity feed)" in printed, printed
    # The run loaded the same list again: its figures are the organisation's still, not zeros.
    channels = pipeline.query("SELECT count(*) FROM risk_channels WHERE risk_id IN "
                              "(SELECT risk_id FROM risk_visibility WHERE user_id = ?)", [BROKER])[0][0]
    assert channels > 0 and latest(pipeline, "risk_channels")["partition_rows"].value == channels
    assert "_no rows_" not in latest(pipeline, "risks")["preview"].value, "the same answer still previews its risks"
    after = signed_lines(pipeline)
    moved = {k for k in after if after[k] != before.get(k)}
    assert moved, "some signed lines changed"
    roots = {r for r, _c in after}
    assert after == truth(pipeline, roots), "every signed line equals the platform's"
    quiet = run(pipeline)
    assert "0 of 4 lists changed" in quiet, "an activity acted on is not acted on again: " + quiet


def test_full_refetches_every_root_and_reconciliation_catches_what_the_feed_missed(pipeline) -> None:
    run(pipeline)
    pipeline.server.set_faults(activities_empty=True)  # a feed that names nothing (an unknown activity kind)
    pipeline.server.advance(changed_fraction=0.0, new_roots=0, lines_changed_fraction=0.3)
    assert "0 of 4 lists changed" in run(pipeline), "nothing tells the sync"
    stale = signed_lines(pipeline) != truth(pipeline, {r for r, _c in signed_lines(pipeline)})
    assert stale, "so the warehouse is behind the platform"
    due = pipeline.bind(WarehouseConfig(path=pipeline.db_path, reconcile_days=1e-9))  # due at once
    printed = run(pipeline, due)
    assert "periodic reconciliation of contracts and lines due" in printed, printed
    assert signed_lines(pipeline) == truth(pipeline, {r for r, _c in signed_lines(pipeline)})
    pipeline.server.admin("reset")
    roots = pipeline.query("SELECT count(DISTINCT root_id) FROM risks r JOIN risk_visibility v USING (risk_id) "
                           "WHERE v.user_id = ?", [BROKER])[0][0]
    run(pipeline, full=True)
    stats = pipeline.server.stats()
    assert stats["GET /api/lines/{id}/combinedSets"] >= roots, "--full fetches every root's lines again"
