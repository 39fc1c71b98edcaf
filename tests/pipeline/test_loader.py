"""The risk loader on hand-made answers: casing, timestamp forms, hostile values, duplicates."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from pipelines.landing import raw
from pipelines.warehouse import db, quality, risks

ROOT_A = "IC00000000-0000-4000-8000-00000000000A"
ROOT_B = "IC00000000-0000-4000-8000-00000000000B"


def land(tmp: Path, rows: list, user: str = "MU-A") -> raw.Landed:
    body = json.dumps(rows).encode()
    path = tmp / f"{user}-{hashlib.md5(body).hexdigest()}.json"
    path.write_bytes(body)
    return raw.Landed(path, user, "/risks", dt.datetime.now(dt.UTC), hashlib.sha256(body).hexdigest(), len(body),
                      len(rows), "X")


@pytest.fixture
def conn(tmp_path: Path):
    with db.session(tmp_path / "w.duckdb") as c:
        yield c


def test_keys_are_read_case_insensitively_and_timestamps_in_every_form(conn, tmp_path) -> None:
    rows = [
        {"id": f"{ROOT_A}::QR1", "rev": "2-aa", "type": "RWPlacing", "umr": " B0999ABC ", "Status": "FirmOrder",
         "InsuredName": "Upper Co", "ContractType": "Open Market", "IsFacility": False, "channels": ["gailbkr_ALL"],
         "placingBrokerChannel": "gailbkr_ALL", "createdAt": "2024-02-21 15:05:47", "updatedAt": "2024-02-22T10:00:00.000Z"},
        {"ID": f"{ROOT_B}::FO", "Rev": "1-bb", "TYPE": "RWPlacing", "UMR": "B1234XYZ", "status": "Signed",
         "insuredName": "lower co", "contractType": "Facilities", "isFacility": "true", "Channels": ["atlasbkr_MARINE"],
         "PlacingBrokerChannel": "atlasbkr_MARINE", "createdat": 1708527947, "updatedat": "2024-02-22T11:00:00+01:00"},
    ]
    result = risks.load_list(conn, land(tmp_path, rows), "x.json")
    got = {r[0]: r[1:] for r in conn.execute(
        "SELECT risk_id, root_id, umr, status, insured_name, is_facility, created_at, updated_at FROM risks").fetchall()}
    assert got[f"{ROOT_A}::QR1"] == (ROOT_A, "B0999ABC", "FirmOrder", "Upper Co", False,
                                     dt.datetime(2024, 2, 21, 15, 5, 47), dt.datetime(2024, 2, 22, 10, 0))
    assert got[f"{ROOT_B}::FO"] == (ROOT_B, "B1234XYZ", "Signed", "lower co", True,
                                    dt.datetime(2024, 2, 21, 15, 5, 47), dt.datetime(2024, 2, 22, 10, 0))
    assert conn.execute("SELECT team_id FROM risk_channels WHERE risk_id = ?", [f"{ROOT_B}::FO"]).fetchone() == ("MARINE",)
    assert result.distinct_risks == 2
    assert [(d["field"], d["kind"]) for d in result.drift] == [("isFacility", "type_change")], "'true' as a string"


def test_hostile_values_are_stored_as_given(conn, tmp_path) -> None:
    nasty = "Robert'); DROP TABLE risks;-- \u00e9\u4e2d\U0001F600 " + "x" * 100_000
    rows = [
        {"id": f"{ROOT_A}::QR1", "rev": "1-aa", "InsuredName": nasty, "Status": None, "umr": 12345,
         "IsFacility": None, "channels": None, "createdAt": None, "updatedAt": "not a date"},
        {"id": None, "rev": "1-cc"},
        {"rev": "1-dd"},
    ]
    rows.append(dict(rows[0]))  # the same object twice in one answer
    result = risks.load_list(conn, land(tmp_path, rows), "x.json")
    assert result.skipped_without_id == 2 and result.duplicates == 1 and result.distinct_risks == 1
    name, status, umr, created, updated = conn.execute(
        "SELECT insured_name, status, umr, created_at, updated_at FROM risks").fetchone()
    assert name == nasty.strip() and status is None and umr == "12345" and created is None and updated is None
    assert conn.execute("SELECT count(*) FROM risks").fetchone()[0] == 1


def test_the_highest_revision_wins_among_duplicates(conn, tmp_path) -> None:
    rows = [{"id": f"{ROOT_A}::FO", "rev": "3-new", "Status": "Signed"},
            {"id": f"{ROOT_A}::FO", "rev": "2-old", "Status": "FirmOrder"}]
    risks.load_list(conn, land(tmp_path, rows), "x.json")
    assert conn.execute("SELECT rev, status FROM risks").fetchone() == ("3-new", "Signed")


def test_an_empty_answer_empties_only_that_organisation(conn, tmp_path) -> None:
    row = {"id": f"{ROOT_A}::FO", "rev": "1-a", "channels": ["gailbkr_ALL", "whitesails_MARINE"]}
    risks.load_list(conn, land(tmp_path, [row], "MU-A"), "a.json")
    risks.load_list(conn, land(tmp_path, [row], "MU-B"), "b.json")
    result = risks.load_list(conn, land(tmp_path, [], "MU-A"), "a2.json")
    assert result.gone == 1 and result.removed_from_warehouse == 0
    assert conn.execute("SELECT user_id FROM risk_visibility").fetchall() == [("MU-B",)]
    risks.load_list(conn, land(tmp_path, [], "MU-B"), "b2.json")
    assert conn.execute("SELECT count(*) FROM risks").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM risk_channels").fetchone()[0] == 0


TIMESTAMP_FORMS = {  # what the platform (or an older or newer one) may send -> the UTC instant it means
    "2024-02-21 15:05:47": "2024-02-21 15:05:47",
    "2024-02-21T15:05:47": "2024-02-21 15:05:47",
    "2024-02-21T15:05:47.250": "2024-02-21 15:05:47.250000",
    "2024-02-21T15:05:47Z": "2024-02-21 15:05:47",
    "2024-02-21T16:05:47+01:00": "2024-02-21 15:05:47",
    "2024-02-21T10:05:47-0500": "2024-02-21 15:05:47",
    1708527947: "2024-02-21 15:05:47",
    "1708527947": "2024-02-21 15:05:47",
    1708527947250: "2024-02-21 15:05:47.250000",
    "next tuesday": "None",
    "2024-13-45 10:00:00": "None",
}
LOAD_UNDER_TZ = """
import json, sys
from pathlib import Path
from tests.pipeline.test_loader import TIMESTAMP_FORMS, land
from pipelines.warehouse import db, quality, risks
tmp = Path(sys.argv[1])
rows = [{"id": f"IC{n:08d}-0000-4000-8000-000000000000::QR1", "rev": "1-a", "createdAt": v, "updatedAt": v}
        for n, v in enumerate(TIMESTAMP_FORMS)]
with db.session(tmp / "w.duckdb") as conn:
    risks.load_list(conn, land(tmp, rows), "x.json")
    got = [str(r[0]) for r in conn.execute("SELECT created_at FROM risks ORDER BY risk_id").fetchall()]
    history = conn.execute("SELECT count(*) FROM risk_history").fetchone()[0]
    check = quality.unparsed_timestamps(conn)
print(json.dumps({"got": got, "history": history, "passed": check.passed, "metadata": check.metadata}))
"""


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Tokyo"])
def test_one_timestamp_rule_whatever_the_machines_time_zone(tmp_path, tz) -> None:
    """Zone-less forms are UTC, epoch seconds and milliseconds are told apart, and a value that cannot
    be read is NULL, counted by a check, and never stops the load."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TZ": tz, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", LOAD_UNDER_TZ, str(tmp_path)], env=env, cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["got"] == list(TIMESTAMP_FORMS.values())
    assert result["history"] == len(TIMESTAMP_FORMS), "every row loaded"
    assert not result["passed"] and result["metadata"]["unreadable_timestamps"] == 4  # two values, two columns


def test_two_new_list_fields_whose_names_normalise_alike_both_survive(conn, tmp_path) -> None:
    rows = [{"id": f"{ROOT_A}::QR1", "rev": "1-a", "fooBar": ["a", "b"], "foo_bar": ["c"]},
            {"id": f"{ROOT_B}::QR1", "rev": "1-b", "fooBar": ["d"], "foo_bar": ["e", "f", "g"]}]
    result = risks.load_list(conn, land(tmp_path, rows), "x.json")
    tables = {item["field"]: item["child_table"] for item in result.drift}
    assert set(tables) == {"fooBar", "foo_bar"} and len(set(tables.values())) == 2, tables
    counts = {field: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for field, table in tables.items()}
    assert counts == {"fooBar": 3, "foo_bar": 4}
    again = risks.load_list(conn, land(tmp_path, rows[:1]), "y.json")
    assert {i["field"]: i["child_table"] for i in again.drift} == tables, "each field keeps its table"


def test_a_channel_not_shaped_company_team_fails_its_check_with_count_and_examples(conn, tmp_path) -> None:
    rows = [{"id": f"{ROOT_A}::FO", "rev": "1-a", "channels": ["gailbkr_ALL", "no team", "Gail BKR_ALL"]},
            {"id": f"{ROOT_B}::FO", "rev": "1-b", "channels": ["whitesails_MARINE", "no team"]}]
    risks.load_list(conn, land(tmp_path, rows), "x.json")
    outcome = quality.channel_format(conn)
    assert not outcome.passed
    assert outcome.metadata == {"bad_channels": 3, "examples": "Gail BKR_ALL, no team, no team"}
    conn.execute("DELETE FROM risk_channels WHERE channel NOT IN ('gailbkr_ALL', 'whitesails_MARINE')")
    assert quality.channel_format(conn).passed


def test_a_parent_check_sees_orphans_whatever_nulls_either_side_holds() -> None:
    """``NOT IN`` over a parent column that holds one NULL is never true, so a check built on it passes
    whatever the children hold; and a child whose key is NULL belongs to nothing."""
    import duckdb

    with duckdb.connect() as c:
        c.execute("CREATE TABLE parent (user_id VARCHAR, root_id VARCHAR)")
        c.execute("CREATE TABLE child (user_id VARCHAR, root_id VARCHAR)")
        c.execute("INSERT INTO parent VALUES ('MU-A', 'IC-1'), ('MU-A', NULL)")
        c.execute("INSERT INTO child VALUES ('MU-A', 'IC-1'), ('MU-A', 'IC-2')")  # IC-2: an orphan
        assert quality.has_parent(c, "child", "parent", "root_id").metadata["orphan_rows"] == 1
        assert quality.has_parent(c, "child", "parent", "(user_id, root_id)").metadata["orphan_rows"] == 1
        c.execute("INSERT INTO child VALUES ('MU-A', NULL)")  # a row tied to no placement
        outcome = quality.has_parent(c, "child", "parent", "(user_id, root_id)")
        assert not outcome.passed and outcome.metadata["orphan_rows"] == 2
        c.execute("DELETE FROM child WHERE root_id IS DISTINCT FROM 'IC-1'")
        assert quality.has_parent(c, "child", "parent", "(user_id, root_id)").passed
