"""Risk depth: contracts, line items, market lines, facility links, incremental fetches, history."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipelines.extract import details
from pipelines.warehouse import details as detail_loader
from pipelines.warehouse import macros
from sandbox import documents
from tests.pipeline.conftest import SUMO_IDS, check_results

BROKER = SUMO_IDS[0]


def detail_meta(result, key: str = "raw_risk_details") -> dict:
    [mat] = [m for m in result.asset_materializations_for_node(key) if m.asset_key.to_user_string() == key]
    return {k: v.value for k, v in mat.metadata.items()}


def api_requests(stats: dict) -> int:
    return sum(v for k, v in stats.items() if k.startswith("GET /api/"))


def test_contract_tables_are_typed_and_complete(pipeline) -> None:
    pipeline.reference()
    result = pipeline.sync(BROKER)
    assert all(check_results(result).values())
    roots = pipeline.query("SELECT count(DISTINCT root_id) FROM risks")[0][0]
    assert pipeline.query("SELECT count(*) FROM contracts")[0][0] == roots
    world = pipeline.server.world
    for root_id, status, umr, inception, expiry, lead in pipeline.query(
            "SELECT root_id, status, umr, inception_date, expiry_date, lead_underwriter_channel FROM contracts LIMIT 50"):
        root = world.find_root(root_id)
        assert umr == root.umr.strip() and inception == root.inception
        assert (expiry - inception).days == 364
        assert status in root.path
        assert lead is None or lead.split("_")[0].upper() in root.carriers
    items = pipeline.query("SELECT heading, text FROM contract_line_items WHERE position = 2 LIMIT 5")
    assert all(h == "Insured" and t for h, t in items)
    tags = {t for (t,) in pipeline.query("SELECT DISTINCT tags FROM contract_line_items__placeholders")}
    assert {"Inception_Date", "Expiry_Date", "Broker_Reference"} <= tags
    declarations = pipeline.query("SELECT count(*) FROM contracts WHERE is_declaration")[0][0]
    assert declarations and declarations == pipeline.query("SELECT count(DISTINCT root_id) FROM facility_links")[0][0]


def test_signed_lines_are_exact_decimals_that_match_the_sandbox(pipeline) -> None:
    pipeline.reference()
    pipeline.sync(BROKER)
    rows = pipeline.query("""SELECT root_id, carrier_company_id, written_pct, signed_pct, is_leader
                             FROM market_lines WHERE set_type = 'signed'""")
    assert rows and all(isinstance(w, Decimal) and isinstance(s, Decimal) for _, _, w, s, _ in rows)
    world = pipeline.server.world
    by_root: dict[str, dict[str, tuple]] = {}
    for root_id, carrier, written, signed, _lead in rows:
        by_root.setdefault(root_id, {})[carrier] = (written, signed)
    for root_id, lines in by_root.items():
        truth = {c: (w, s) for c, w, s in documents.shares(world.find_root(root_id))}
        assert lines == truth, root_id
    totals = pipeline.query("""SELECT sum(signed_pct) FROM market_lines WHERE set_type = 'signed'
                               GROUP BY root_id HAVING sum(written_pct) > 100""")
    assert totals and all(t == Decimal(100) for (t,) in totals), "signed down to exactly 100%"
    assert pipeline.query("SELECT count(*) FROM market_lines WHERE is_leader")[0][0] > 0
    assert pipeline.query("SELECT count(*) FROM market_lines WHERE market = 'Lloyd''s' AND pseudonym IS NULL")[0][0] == 0


def test_a_line_percentage_the_loader_cannot_read_is_kept_and_counted(pipeline) -> None:
    """Line percentages are text ("44.0272"). One written with a decimal comma ("44,0272") is not a number
    the loader can read safely: its value stays NULL, the text is kept beside it, and a check fails, so
    no line total or share silently leaves the line out."""
    pipeline.reference()
    pipeline.server.set_faults(line_pct_form="comma")
    result = pipeline.sync(BROKER)
    assert check_results(result)["market_lines_values_parse"] is False
    unread = pipeline.query("SELECT written_raw, written_pct, signed_raw, signed_pct FROM market_lines "
                            "WHERE written_raw LIKE '%,%' OR signed_raw LIKE '%,%'")
    assert unread, "the sandbox wrote some percentages with a decimal comma"
    assert all((w is None) == ("," in wr) and (s is None) == (sr is None or "," in sr) for wr, w, sr, s in unread)
    read = pipeline.query("SELECT count(*) FROM market_lines WHERE written_raw NOT LIKE '%,%' AND written_pct IS NULL")
    assert read == [(0,)], "a percentage in the usual form is read"


def test_a_resync_with_one_percent_changed_makes_few_requests(pipeline) -> None:
    pipeline.reference()
    before = api_requests(pipeline.server.stats())
    pipeline.sync(BROKER)
    full = api_requests(pipeline.server.stats()) - before
    pipeline.server.advance(changed_fraction=0.01, new_roots=0)
    before = api_requests(pipeline.server.stats())
    result = pipeline.sync(BROKER)
    incremental = api_requests(pipeline.server.stats()) - before
    assert full > 500
    assert incremental <= 0.05 * full, (incremental, full)
    meta = detail_meta(result)
    assert meta["roots_fetched"] > 0 and meta["roots_unchanged"] > 0.9 * (meta["roots_fetched"] + meta["roots_unchanged"])
    nothing = api_requests(pipeline.server.stats())
    pipeline.sync(BROKER)
    assert api_requests(pipeline.server.stats()) - nothing == 2, "unchanged: the list and myDetails only"


def test_failed_detail_calls_are_reported_and_retried_next_run(pipeline) -> None:
    pipeline.reference()
    pipeline.server.set_faults(error_burst=10_000, error_status=400, only="/api/lines/IC")
    # 400s are not retried: every line-set call fails at once, contracts alone would still be fetched.
    result = pipeline.sync(SUMO_IDS[2])
    assert result.success, "the partition still loads"
    meta = detail_meta(result)
    assert meta["roots_failed"] > 0 and meta["roots_fetched"] == 0
    assert check_results(result)["contracts_fetched"] is False
    assert pipeline.query("SELECT count(*) FROM detail_failures")[0][0] == meta["roots_failed"]
    assert pipeline.query("SELECT count(*) FROM risks")[0][0] > 0
    pipeline.server.admin("reset")
    again = pipeline.sync(SUMO_IDS[2])
    assert detail_meta(again)["roots_fetched"] == meta["roots_failed"]
    assert check_results(again)["contracts_fetched"] is True
    assert pipeline.query("SELECT count(*) FROM detail_failures")[0][0] == 0


def test_a_crash_before_the_index_is_written_refetches(pipeline, monkeypatch) -> None:
    pipeline.reference()
    real = details._write_json_atomically

    def crash(*args, **kwargs):
        raise RuntimeError("killed before the index was saved")

    monkeypatch.setattr(details, "_write_json_atomically", crash)
    assert not pipeline.sync(BROKER, raise_on_error=False).success
    monkeypatch.setattr(details, "_write_json_atomically", real)
    meta = detail_meta(pipeline.sync(BROKER))
    assert meta["roots_fetched"] > 150 and meta["roots_unchanged"] == 0, "nothing was marked fetched"
    assert pipeline.query("SELECT count(*) FROM contracts")[0][0] == meta["roots_fetched"]


def test_a_crash_in_the_load_leaves_the_landed_file_pending(pipeline, monkeypatch) -> None:
    pipeline.reference()

    with monkeypatch.context() as patched:  # a table that cannot be written: the load dies half-way
        patched.setattr(detail_loader, "DETAIL_TABLES", ("contracts", "no_such_table"))
        assert not pipeline.sync(BROKER, raise_on_error=False).success
    assert pipeline.query("SELECT count(*) FROM contracts")[0][0] == 0, "the failed load left nothing behind"
    result = pipeline.sync(BROKER)
    assert detail_meta(result)["roots_fetched"] == 0, "already fetched"
    assert pipeline.query("SELECT count(*) FROM contracts")[0][0] > 150, "the pending file was loaded"


def test_history_across_three_time_steps(pipeline) -> None:
    pipeline.reference()
    pipeline.sync(BROKER)
    for _ in range(3):
        pipeline.server.advance(changed_fraction=0.3, new_roots=5, removed_fraction=0.01)
        pipeline.sync(BROKER)
    multi = pipeline.query("""SELECT risk_id, count(*) FROM risk_history GROUP BY 1 HAVING count(*) >= 3""")
    assert multi, "some documents changed in several steps"
    assert pipeline.query("SELECT count(*) FROM (SELECT risk_id FROM risk_history WHERE valid_to IS NULL "
                          "GROUP BY 1 HAVING count(*) > 1)")[0][0] == 0, "one open row per document"
    assert pipeline.query("SELECT count(*) FROM risk_history WHERE valid_to < valid_from")[0][0] == 0
    current = pipeline.query("""SELECT count(*) FROM risks r JOIN risk_history h
                                ON h.risk_id = r.risk_id AND h.rev = r.rev AND h.valid_to IS NULL""")[0][0]
    assert current == pipeline.query("SELECT count(*) FROM risks")[0][0]
    closed_gone = pipeline.query("""SELECT count(*) FROM risk_history h WHERE valid_to IS NOT NULL
                                    AND NOT EXISTS (SELECT 1 FROM risks r WHERE r.risk_id = h.risk_id)""")[0][0]
    assert closed_gone > 0, "documents that disappeared have their last row closed"
    moved = pipeline.query("""SELECT count(DISTINCT risk_id) FROM (
                                SELECT risk_id, count(DISTINCT status) AS n FROM risk_history GROUP BY 1) WHERE n > 1""")
    assert moved[0][0] > 0, "status over time is plain SQL"


@pytest.mark.parametrize("text", ["05 Sep 2022", "5 September 2022", "2022-09-05", "05/09/2022"])
def test_placeholder_dates_in_several_forms(tmp_path, text) -> None:
    import duckdb

    with duckdb.connect() as conn:
        macros.install(conn)
        assert str(conn.execute("SELECT ws_date(?)", [text]).fetchone()[0]) == "2022-09-05"


def test_a_carriers_own_copy_is_not_taken_for_an_endorsement() -> None:
    import duckdb

    with duckdb.connect() as conn:
        macros.install(conn)
        ranks = conn.execute("SELECT ws_instance_rank('IC1::FO::EN2'), ws_instance_rank('IC1::FO'), "
                             "ws_instance_rank('IC1::FO::WHITESAILS::MARINE'), ws_instance_rank('IC1::QR1')").fetchone()
    assert ranks == (3, 2, 1, 1)
