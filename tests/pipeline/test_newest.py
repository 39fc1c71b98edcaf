"""Newest wins, whatever the load order: a risk seen by several organisations is stored at its newest
revision, and ``risks`` never disagrees with the current row of ``risk_history``."""

from __future__ import annotations

import json

import pytest

from pipelines.warehouse import db, risks
from tests.pipeline.conftest import SUMO_IDS
from tests.pipeline.test_loader import ROOT_A, ROOT_B, land

DISAGREE = """SELECT count(*) FROM risks r JOIN risk_history h ON h.risk_id = r.risk_id AND h.valid_to IS NULL
              WHERE h.rev IS DISTINCT FROM r.rev"""


def doc(root: str, generation: int, updated: str, status: str) -> dict:
    return {"id": f"{root}::FO", "rev": f"{generation}-{'a' * 32}", "Status": status, "updatedAt": updated,
            "channels": ["gailbkr_ALL", "whitesails_MARINE"]}


@pytest.mark.parametrize("order", [("fresh", "stale"), ("stale", "fresh")])
def test_the_newest_revision_wins_whichever_organisation_loads_first(tmp_path, order) -> None:
    lists = {
        "fresh": land(tmp_path, [doc(ROOT_A, 3, "2025-06-03 10:00:00", "Signed"),
                                 doc(ROOT_B, 1, "2025-05-01 10:00:00", "FirmOrder")], "MUFRESH"),
        "stale": land(tmp_path, [doc(ROOT_A, 2, "2025-06-01 10:00:00", "FirmOrder"),
                                 doc(ROOT_B, 1, "2025-05-01 10:00:00", "FirmOrder")], "MUSTALE"),
    }
    with db.session(tmp_path / "w.duckdb") as conn:
        for name in order:
            risks.load_list(conn, lists[name], f"{name}.json")
        assert conn.execute("SELECT rev, status FROM risks WHERE risk_id = ?", [f"{ROOT_A}::FO"]).fetchone() == (
            f"3-{'a' * 32}", "Signed")
        assert conn.execute(DISAGREE).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM risk_visibility").fetchone()[0] == 4, "both still see both"
        assert conn.execute("SELECT count(*) FROM risk_history WHERE risk_id = ?", [f"{ROOT_A}::FO"]).fetchone()[0] == 2


def test_a_lagging_organisation_does_not_roll_shared_risks_back(pipeline) -> None:
    """The sandbox serves the carrier's list a tick behind the broker's; the carrier loads last."""
    pipeline.start_from("synced")
    pipeline.server.advance(changed_fraction=0.3, new_roots=0)
    pipeline.server.advance(changed_fraction=0.3, new_roots=0)
    pipeline.server.set_faults(stale_list_for="MCNEILLIEUWR")  # it shows the first of those two days
    for mu in SUMO_IDS:  # the broker first (fresh), the lagging carrier last
        pipeline.sync(mu)
    world = pipeline.server.world
    rows = pipeline.query("SELECT risk_id, rev FROM risks")
    fresh = ("GAILBKR", "WHITESAILS")  # a document these see is loaded fresh too, and must stay fresh
    stale = [(rid, rev) for rid, rev in rows
             if (root := world.find_root(rid.split("::")[0])) is not None and rev != root.rev(rid)
             and any(world.visible_to(root.index, company) for company in fresh)
             and "::MCNEILLIEUWR::" not in rid]  # the lagging carrier's own copies: only its list holds them
    assert stale == [], f"{len(stale)} shared documents were rolled back to an older revision"
    assert pipeline.query(DISAGREE) == [(0,)]


def test_a_root_that_leaves_the_list_takes_its_pending_failures_with_it(tmp_path) -> None:
    import datetime as dt

    with db.session(tmp_path / "w.duckdb") as conn:
        risks.load_list(conn, land(tmp_path, [doc(ROOT_A, 1, "2025-06-01 10:00:00", "FirmOrder"),
                                              doc(ROOT_B, 1, "2025-06-01 10:00:00", "FirmOrder")]), "a.json")
        for root in (ROOT_A, ROOT_B):
            conn.execute("INSERT INTO detail_failures (root_id, user_id, error, failed_at) VALUES (?, 'MU-A', 'x', ?)",
                         [root, dt.datetime(2025, 6, 1)])
        risks.load_list(conn, land(tmp_path, [doc(ROOT_A, 1, "2025-06-01 10:00:00", "FirmOrder")]), "b.json")
        assert conn.execute("SELECT root_id FROM detail_failures").fetchall() == [(ROOT_A,)]


def detail_file(raw_dir, user_id: str, root: str, suffix: str, generation: int, status: str):
    """A landed detail file holding one root's contract, as ``extract.details.fetch`` writes it."""
    import json

    from pipelines.landing.raw import details_dir

    contract = {"_id": f"{root}::{suffix}", "_rev": f"{generation}-{'b' * 32}", "updatedAt": "2025-06-01 10:00:00",
                "control": {"status": status, "umr": "B0999X"}, "MRCContract": {"lineItems": []}}
    folder = details_dir(raw_dir, user_id)
    folder.mkdir(parents=True, exist_ok=True)
    line = {"root_id": root, "risk_id": f"{root}::{suffix}", "contract": json.dumps(contract), "lines": "[]",
            "error": None}
    path = folder / f"2025060{generation}T000000000000Z.jsonl"
    path.write_text(json.dumps(line) + "\n")


@pytest.mark.parametrize("order", [("MUFRESH", "MUSTALE"), ("MUSTALE", "MUFRESH")])
def test_the_most_advanced_contract_wins_whichever_organisation_loads_first(tmp_path, order) -> None:
    from pipelines.warehouse import details

    raw_dir = tmp_path / "raw"
    detail_file(raw_dir, "MUFRESH", ROOT_A, "FO", 3, "Signed")
    detail_file(raw_dir, "MUSTALE", ROOT_A, "QR1", 1, "QuotationRequest")  # its view still lists the quote
    with db.session(tmp_path / "w.duckdb") as conn:
        risks.load_list(conn, land(tmp_path, [doc(ROOT_A, 3, "2025-06-03 10:00:00", "Signed")], "MUFRESH"), "f.json")
        loaded = [details.load_pending(conn, raw_dir, user) for user in order]
        assert conn.execute("SELECT risk_id, status FROM contracts").fetchall() == [(f"{ROOT_A}::FO", "Signed")]
        assert sum(r.older for r in loaded) == (1 if order[0] == "MUFRESH" else 0)


def test_of_two_fetches_of_the_same_contract_the_later_line_sets_win(tmp_path) -> None:
    """A rebuild may load an organisation's older detail file after another's newer one."""
    import json

    from pipelines.landing.raw import details_dir
    from pipelines.warehouse import details

    raw_dir = tmp_path / "raw"
    contract = {"_id": f"{ROOT_A}::FO", "_rev": "3-" + "b" * 32, "control": {"status": "Signed"}}

    def lines(signed: str) -> str:
        return json.dumps([{"_id": f"{ROOT_A}::FO::X::Y::SILS", "type": "RWSignedLineSet", "contents": [
            {"stamperChannel": "x_Y", "impressions": [{"writtenLinePercentageString": "50",
                                                        "signedLinePercentageString": signed}]}]}])

    for user, fetched, signed in (("MULATER", "2025-06-03T10:00:00+00:00", "40"),
                                  ("MUEARLIER", "2025-06-01T10:00:00+00:00", "50")):
        folder = details_dir(raw_dir, user)
        folder.mkdir(parents=True)
        (folder / "x.jsonl").write_text(json.dumps({
            "root_id": ROOT_A, "risk_id": f"{ROOT_A}::FO", "contract": json.dumps(contract), "lines": lines(signed),
            "error": None, "fetched_at": fetched}) + "\n")
    with db.session(tmp_path / "w.duckdb") as conn:
        risks.load_list(conn, land(tmp_path, [doc(ROOT_A, 3, "2025-06-03 10:00:00", "Signed")], "MULATER"), "f.json")
        for user in ("MULATER", "MUEARLIER"):  # the earlier fetch loads last
            details.load_pending(conn, raw_dir, user)
        assert conn.execute("SELECT signed_pct FROM market_lines").fetchall() == [(40,)]


def test_carriers_own_copies_load_and_do_not_change_a_placements_status(pipeline) -> None:
    """Carriers' lists hold their own copies of a placement (``FO::<COMPANY>::<TEAM>``,
    ``SIGNED::…``); the placement's status in the marts is still its firm order's."""
    pipeline.start_from("synced")
    pipeline.marts()
    copies = pipeline.query("SELECT count(*) FROM risks WHERE regexp_matches(risk_id, '::(FO|SIGNED)::[A-Z]+::')")[0][0]
    assert copies > 0
    wrong = pipeline.query("""
        SELECT p.root_id FROM mart_placements p JOIN risks r ON r.risk_id = p.root_id || '::FO'
        WHERE p.status IS DISTINCT FROM r.status
          AND p.root_id IN (SELECT split_part(risk_id, '::', 1) FROM risks WHERE regexp_matches(risk_id, '::FO::[A-Z]+::'))""")
    assert wrong == []


def test_an_older_revision_does_not_overwrite_the_list_fields_of_the_newer_one(tmp_path) -> None:
    """A list-valued field the loader does not know gets its own table (``risks__labels``): its rows are
    the stored revision's, even when a lagging organisation's older revision is loaded after it."""
    fresh = dict(doc(ROOT_A, 3, "2025-06-03 10:00:00", "Signed"), labels=["renewal", "priority"])
    stale = dict(doc(ROOT_A, 2, "2025-06-01 10:00:00", "FirmOrder"), labels=["draft"])
    with db.session(tmp_path / "w.duckdb") as conn:
        risks.load_list(conn, land(tmp_path, [fresh], "MUFRESH"), "fresh.json")
        risks.load_list(conn, land(tmp_path, [stale], "MUSTALE"), "stale.json")
        labels = conn.execute("SELECT value FROM risks__labels ORDER BY position").fetchall()
        assert [json.loads(v) for (v,) in labels] == ["renewal", "priority"]
        assert conn.execute("SELECT rev FROM risks").fetchone() == (f"3-{'a' * 32}",)
