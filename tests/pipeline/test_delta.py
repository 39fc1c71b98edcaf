"""Delta loads: an answer whose elements mostly equal the stored documents writes only the others, and
the warehouse is the one a whole load of every answer would give."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from pipelines.warehouse import db, risks
from sandbox import documents
from sandbox.world import USERS, World
from tests.pipeline.conftest import SUMO_IDS, materializations
from tests.pipeline.test_loader import land

MEMBERSHIPS = [(m.user_id, m.company_id) for m in USERS[0].memberships]
COMPARED = {  # every table a risk list's load writes, less the load times a delta load leaves alone
    "risks": "* EXCLUDE (loaded_at)",
    "risk_channels": "*",
    "risk_visibility": "*",
    "risk_history": "*",
    "risks_gone": "* EXCLUDE (loaded_at)",
    "sync_state": "*",
    "schema_drift": "*",
}


def answer(world: World, company: str, **render) -> list[dict]:
    return list(documents.risk_rows(world, company, **render))


def days(seed: int = 5) -> list[tuple[str, dict[str, list[dict]]]]:
    """Each organisation's answer, day after day, with what the platform does that a delta load must
    not get wrong: revisions, new and removed roots, a view a day behind, a row re-rendered without a
    new revision, an empty answer, a repeated element, and at last a field the loader does not know."""
    world = World(seed=seed, scale=0.15)
    out = [("first", {u: answer(world, c) for u, c in MEMBERSHIPS})]
    before = world
    world = world.advanced(changed_fraction=0.2, new_roots=8, removed_fraction=0.1)
    out.append(("moved on", {u: answer(world, c) for u, c in MEMBERSHIPS}))
    lagging = MEMBERSHIPS[-1][0]
    before, world = world, world.advanced(changed_fraction=0.3, new_roots=3)
    out.append(("one view lags", {u: answer(before if u == lagging else world, c) for u, c in MEMBERSHIPS}))
    out.append(("caught up", {u: answer(world, c) for u, c in MEMBERSHIPS}))
    out.append(("re-rendered, same revisions", {u: answer(world, c, status_display=True) for u, c in MEMBERSHIPS}))
    emptied = MEMBERSHIPS[1][0]
    world = world.advanced(changed_fraction=0.05, new_roots=2, removed_fraction=0.05)
    out.append(("one empty", {u: [] if u == emptied else answer(world, c) for u, c in MEMBERSHIPS}))
    repeated = {u: answer(world, c) for u, c in MEMBERSHIPS}
    repeated[MEMBERSHIPS[0][0]] += repeated[MEMBERSHIPS[0][0]][:3]
    out.append(("back, one answer repeats elements", repeated))
    out.append(("an unknown field", {u: answer(world, c, drift="added") for u, c in MEMBERSHIPS}))
    out.append(("the field stays, the order changes",  # new answers, and not one element's text is new
                {u: answer(world, c, drift="added")[::-1] for u, c in MEMBERSHIPS}))
    world = world.advanced(changed_fraction=0.05, new_roots=1)
    out.append(("after the drift", {u: answer(world, c) for u, c in MEMBERSHIPS}))
    return out


def load_days(tmp: Path, name: str) -> tuple[Path, list[tuple[str, str, risks.RiskLoad]]]:
    path = tmp / f"{name}.duckdb"
    loads = []
    for n, (day, answers) in enumerate(days()):
        now = dt.datetime(2026, 1, 1) + dt.timedelta(days=n)
        for user, rows in answers.items():
            with db.session(path) as conn:
                loads.append((day, user, risks.load_list(conn, land(tmp, rows, user), f"{day}.json", now=now)))
    return path, loads


def snapshot(path: Path) -> dict[str, list[tuple]]:
    with db.session(path) as conn:
        return {t: sorted(conn.execute(f"SELECT {cols} FROM {t}").fetchall(), key=repr)  # noqa: S608 - constants
                for t, cols in COMPARED.items()}


def test_a_delta_load_leaves_the_warehouse_a_whole_load_leaves(tmp_path, monkeypatch) -> None:
    delta_path, delta_loads = load_days(tmp_path, "delta")
    with monkeypatch.context() as m:
        m.setattr(risks, "_delta_scan", lambda *_: False)  # every answer loaded whole
        whole_path, whole_loads = load_days(tmp_path, "whole")
    assert all(r.parsed == r.api_items or r.parsed == 0 == r.added + r.changed + r.gone for _, _, r in whole_loads), \
        "every element read, or the same answer as before"

    delta, whole = snapshot(delta_path), snapshot(whole_path)
    for table in COMPARED:
        assert delta[table] == whole[table], f"{table} differs after delta loads"
    assert len(delta["risks_gone"]) > 0 and len(delta["risk_history"]) > len(delta["risks"])

    def figures(result: risks.RiskLoad) -> dict:
        return {k: v for k, v in dataclasses.asdict(result).items() if k not in ("parsed", "delta")}

    for (day, user, d), (_, _, w) in zip(delta_loads, whole_loads, strict=True):
        assert figures(d) == figures(w), f"{day}, {user}: the load reports other figures"
    by_day = {}
    for day, user, r in delta_loads:
        by_day.setdefault(day, {})[user] = r
    moved = by_day["moved on"].values()
    assert all(r.delta and 0 < r.parsed < r.api_items for r in moved), "a day of 20% revised is a delta load"
    assert all(r.delta and r.parsed > 0 and r.changed == 0
               for r in by_day["re-rendered, same revisions"].values()), "rows' text changed, no revision did"
    assert not by_day["back, one answer repeats elements"][MEMBERSHIPS[0][0]].delta, "duplicates: loaded whole"
    assert not any(r.delta for r in by_day["after the drift"].values()), "after drift every element is read"


def test_a_row_re_rendered_without_a_new_revision_is_loaded_again(pipeline) -> None:
    """The sandbox renders every row's Status in its display form ("Firm Order"), revisions unchanged:
    a loader that trusted an unchanged ``rev`` would keep the old status for every one of them."""
    pipeline.start_from("synced")
    assert pipeline.query("SELECT count(*) FROM risks WHERE status = 'FirmOrder'")[0][0] > 0
    pipeline.server.set_faults(status_display=True)
    results = [pipeline.sync(mu) for mu in SUMO_IDS]
    assert pipeline.query("SELECT count(*) FROM risks WHERE regexp_matches(status, '[a-z][A-Z]')") == [(0,)]
    assert pipeline.query("SELECT count(*) FROM risks WHERE status = 'Firm Order'")[0][0] > 0
    meta = materializations(results[0], "risks")
    assert meta["load"] == "delta" and meta["changed"] == 0 and 0 < meta["documents_parsed"] < meta["api_items"]


@pytest.fixture
def conn(tmp_path: Path):
    with db.session(tmp_path / "w.duckdb") as c:
        yield c


def test_an_answer_without_changes_but_in_another_order_writes_nothing(conn, tmp_path) -> None:
    world = World(seed=3, scale=0.05)
    user, company = MEMBERSHIPS[0]
    rows = answer(world, company)
    risks.load_list(conn, land(tmp_path, rows, user), "a.json", now=dt.datetime(2026, 1, 1))
    result = risks.load_list(conn, land(tmp_path, rows[::-1], user), "b.json", now=dt.datetime(2026, 1, 2))
    assert result.delta and result.parsed == 0 and result.unchanged == len(rows)
    assert conn.execute("SELECT DISTINCT loaded_at FROM risks").fetchall() == [(dt.datetime(2026, 1, 1),)]
    assert conn.execute("SELECT DISTINCT synced_at FROM risk_visibility").fetchall() == [(dt.datetime(2026, 1, 2),)]


def test_a_document_whose_id_is_spelled_otherwise_is_never_taken_as_unchanged(conn, tmp_path) -> None:
    """The stored texts are matched by their MD5 (``risks.raw_md5``), and a matched element takes the
    stored document's id. That holds only where the document's own ``id`` field is that id: one that
    spells it ``ID`` has no digest, so an answer holding it is loaded whole, as it always was."""
    world = World(seed=3, scale=0.05)
    user, company = MEMBERSHIPS[0]
    rows = answer(world, company)
    rows[0] = {("ID" if k == "id" else k): v for k, v in rows[0].items()}
    first = risks.load_list(conn, land(tmp_path, rows, user), "a.json", now=dt.datetime(2026, 1, 1))
    assert first.distinct_risks == len(rows), "the ID spelling is read"
    assert conn.execute("SELECT count(*) FROM risks WHERE raw_md5 IS NULL").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM risks WHERE raw_md5 = md5(raw)").fetchone()[0] == len(rows) - 1
    again = risks.load_list(conn, land(tmp_path, rows[::-1], user), "b.json", now=dt.datetime(2026, 1, 2))
    assert not again.delta and again.parsed == len(rows)
    assert again.unchanged == len(rows) and again.added == again.gone == 0


def test_a_warehouse_from_before_the_digests_parses_its_documents_once_more(conn, tmp_path) -> None:
    """Rows written before ``risks.raw_md5`` existed have none (``ensure_schema`` adds the column empty):
    no element can pass for them unread, so the next answer is parsed whole and gives them their digest."""
    world = World(seed=3, scale=0.05)
    user, company = MEMBERSHIPS[0]
    rows = answer(world, company)
    risks.load_list(conn, land(tmp_path, rows, user), "a.json", now=dt.datetime(2026, 1, 1))
    before = conn.execute("SELECT * EXCLUDE (loaded_at, raw_md5) FROM risks ORDER BY risk_id").fetchall()
    conn.execute("UPDATE risks SET raw_md5 = NULL")
    again = risks.load_list(conn, land(tmp_path, rows[::-1], user), "b.json", now=dt.datetime(2026, 1, 2))
    assert again.parsed == len(rows) and again.unchanged == len(rows) and again.added == again.gone == 0
    assert conn.execute("SELECT * EXCLUDE (loaded_at, raw_md5) FROM risks ORDER BY risk_id").fetchall() == before
    assert conn.execute("SELECT count(*) FROM risks WHERE raw_md5 = md5(raw)").fetchone()[0] == len(rows)
    third = risks.load_list(conn, land(tmp_path, rows, user), "c.json", now=dt.datetime(2026, 1, 3))
    assert third.delta and third.parsed == 0
