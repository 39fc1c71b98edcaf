"""The loaders against answers nobody wrote by hand (Hypothesis): hostile values, wrong JSON types,
missing, duplicated and case-variant keys, NUL and control characters, deep nesting, elements that are
not objects. For every answer: the load does not raise, every element with a valid key that was not set
aside is loaded, and loading the same answer again changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.client import documents
from pipelines.client.jsonscan import inspect_json_array
from pipelines.landing import raw
from pipelines.warehouse import db, mireport, risks

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_examples = itertools.count()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=16),
    st.sampled_from(["98765432109876543210.55", "1e308", "-0", "20240301", "1,250.00", "1.250,00", "EUR 1,250",
                     "\x00", "Nul\x00Ltd", "\x1b[31m", "😀", "true", "TBA", "2024-02-30", "9999-99-99 99:99:99"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=6)
FIELDS = ["rev", "type", "umr", "InsuredName", "Status", "ContractType", "IsFacility", "placingBrokerChannel",
          "createdAt", "updatedAt", "channels"]


def _case(key: str) -> st.SearchStrategy[str]:
    return st.sampled_from([key, key.lower(), key.upper()])


@st.composite
def risk_rows(draw, prefix: str):
    row = {}
    for field in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=len(FIELDS))):
        row[draw(_case(field))] = draw(values)
    kind = draw(st.sampled_from(["valid", "valid", "valid", "invalid", "missing", "number"]))
    if kind == "valid":
        row[draw(_case("id"))] = f"{prefix}{draw(st.integers(0, 5))}::{draw(st.sampled_from(['QR1', 'FO', 'FO::EN1']))}"
    elif kind == "invalid":
        row["id"] = draw(st.sampled_from(["IC../../x::FO", "", "IC1 2", "MU1", "IC1::FO?x=1"]))
    elif kind == "number":
        row["id"] = draw(st.integers())
    if draw(st.integers(0, 9)) == 0:
        row["notes"] = "DEEP"  # replaced by a value nested 200 levels deep in the text
    return row


def answer_text(elements: list) -> str:
    return "[" + ",".join(json.dumps(e).replace('"DEEP"', "[" * 200 + "]" * 200) for e in elements) + "]"


def land(folder: Path, user: str, text: str) -> raw.Landed:
    path = folder / f"{user}-{hashlib.md5(text.encode()).hexdigest()}.json"
    path.write_text(text)
    items, aside = inspect_json_array(path, documents.risk_list_problem)  # what the download records
    return raw.Landed(path, user, "/risks", dt.datetime.now(dt.UTC), hashlib.sha256(text.encode()).hexdigest(),
                      len(text.encode()), items, "X", tuple(aside))


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    with db.session(tmp_path_factory.mktemp("warehouse") / "w.duckdb") as c:
        yield c


def organisation_rows(conn, user: str) -> dict[str, list]:
    mine = "SELECT risk_id FROM risk_visibility WHERE user_id = ?"
    return {
        "visibility": conn.execute("SELECT risk_id FROM risk_visibility WHERE user_id = ? ORDER BY 1", [user]).fetchall(),
        "risks": conn.execute(f"SELECT * EXCLUDE (loaded_at) FROM risks WHERE risk_id IN ({mine}) ORDER BY risk_id",
                              [user]).fetchall(),
        "channels": conn.execute(f"SELECT * FROM risk_channels WHERE risk_id IN ({mine}) ORDER BY ALL", [user]).fetchall(),
        "history": conn.execute(f"SELECT * EXCLUDE (first_seen_at, valid_from, valid_to) FROM risk_history "
                                f"WHERE risk_id IN ({mine}) ORDER BY ALL", [user]).fetchall(),
        "quarantine": conn.execute("SELECT * EXCLUDE (first_seen_at, last_seen_at) FROM quarantine WHERE user_id = ? "
                                   "ORDER BY ALL", [user]).fetchall(),
    }


@SETTINGS
@given(data=st.data())
def test_a_risk_list_loads_whatever_it_holds(conn, tmp_path_factory, data) -> None:
    n = next(_examples)
    user, prefix = f"MUPROP{n}", f"IC{n:08X}-AAAA-"
    elements = data.draw(st.lists(st.one_of(risk_rows(prefix), risk_rows(prefix), values), max_size=12))
    landed = land(tmp_path_factory.mktemp("answer"), user, answer_text(elements))

    risks.load_list(conn, landed, "x.json")  # never raises

    aside = {a.position for a in landed.set_aside}
    expected = set()
    for position, element in enumerate(elements, 1):
        if position in aside:
            continue
        assert isinstance(element, dict) and documents.risk_list_problem(element) is None
        expected.add(next(v for k, v in element.items() if k.lower() == "id"))
    got = organisation_rows(conn, user)
    assert {r for (r,) in got["visibility"]} == expected, "every element with a valid id not set aside is loaded"
    assert len(got["quarantine"]) == len({a.digest for a in landed.set_aside}), "each one set aside is recorded"

    risks.load_list(conn, landed, "x.json")
    assert organisation_rows(conn, user) == got, "the same answer again changes nothing"


mi_fields = st.fixed_dictionaries({}, optional={
    k: values for k in ("premium", "premiumCCY", "premiumAll", "limit", "brokerage", "periodFrom", "periodTo",
                        "riskCreatedAt", "riskUpdatedAt", "dataVersion", "status", "umr", "insured", "underwriterDetails")})


@st.composite
def mi_rows(draw, prefix: str):
    row = draw(mi_fields)
    kind = draw(st.sampled_from(["valid", "valid", "valid", "invalid", "missing"]))
    if kind == "valid":
        row["rootID"] = f"{prefix}{draw(st.integers(0, 5))}"
    elif kind == "invalid":
        row["rootID"] = draw(st.sampled_from(["IC../x", "", "IC1::FO", 7]))
    if draw(st.booleans()):
        row["underwriterDetails"] = [{"carrierCompanyID": draw(st.text(max_size=6)), "content": [
            {"leadUWFlag": draw(values), "impressions": [{"writtenLinePerc": draw(values), "signedLinePerc": draw(values),
                                                          "stamp": draw(values)}]}]}]
    return row


@SETTINGS
@given(data=st.data())
def test_an_mi_answer_loads_whatever_it_holds(conn, tmp_path_factory, data) -> None:
    n = next(_examples)
    user, prefix = f"MUMIPROP{n}", f"IC{n:08X}-BBBB-"
    elements = data.draw(st.lists(st.one_of(mi_rows(prefix), mi_rows(prefix), values), min_size=1, max_size=10))
    raw_dir = tmp_path_factory.mktemp("raw")
    text = answer_text(elements)
    for k in range(2):  # the same answer landed twice: the second load changes nothing
        path = raw.mi_dir(raw_dir, user) / f"2026010{k + 1}T000000000000Z.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        mireport.load_pending(conn, raw_dir)  # never raises
        rows = conn.execute("SELECT * EXCLUDE (landed_at) FROM mi_report WHERE user_id = ? ORDER BY root_id",
                            [user]).fetchall()
        carriers = conn.execute("SELECT * FROM mi_report_carriers WHERE user_id = ? ORDER BY ALL", [user]).fetchall()
        if k == 0:
            first = rows, carriers
    assert (rows, carriers) == first
    def loadable(e) -> bool:
        return (isinstance(e, dict) and documents.is_root_id(e.get("rootID")) and not documents.has_nul(e)
                and "DEEP" not in json.dumps(e))

    keyed = {e["rootID"] for e in elements if loadable(e)}
    assert {r[1] for r in rows} == keyed, "every row with a valid rootID is loaded, once per placement"
    [(aside,)] = conn.execute("SELECT count(*) FROM quarantine WHERE user_id = ?", [user]).fetchall()
    assert aside == len({json.dumps(e) for e in elements if not loadable(e)}), "every other one is recorded"


@st.composite
def detail_line(draw, root: str):
    control = {k: draw(values) for k in draw(st.lists(st.sampled_from(
        ["status", "umr", "insuredName", "contractType", "isFacility", "associatedFacilityIDs", "limitSummary",
         "placingBrokerChannel", "leadUnderwriterChannel"]), unique=True))}
    contract = draw(st.one_of(
        st.just({"_id": f"{root}::FO", "_rev": draw(values), "updatedAt": draw(values), "control": control,
                 "MRCContract": {"lineItems": [{"placeholders": [{"tags": [draw(st.sampled_from(
                     ["Inception_Date", "Premium_Amount"]))], "value": draw(values)}]}]}}),
        values))
    impression = {k: draw(values) for k in draw(st.lists(st.sampled_from(
        ["writtenLinePercentageString", "signedLinePercentageString", "yearOfAccount", "riskCodes", "stamp"]),
        unique=True))}
    lines = draw(st.one_of(st.just([{"_id": f"{root}::SILS", "type": draw(values), "contents": [
        {"stamperChannel": draw(values), "role": draw(values), "impressions": [impression]}]}]), values))
    defined = draw(st.one_of(st.just({"metadata": {"documentID": f"{root}::FO"}, "definedData": [
        {"tag": draw(st.sampled_from(["Premium_Amount", "Brokerage_%", "Inception_Date", "Other"])),
         "value": draw(values), "lineItemIndex": draw(values)} for _ in range(draw(st.integers(0, 3)))]}), values))
    return {"root_id": root, "risk_id": f"{root}::FO", "signature": "s", "fetched_at": "2026-01-01T00:00:00+00:00",
            "contract": json.dumps(contract), "lines": json.dumps(lines), "defined_data": json.dumps(defined),
            "error": None}


@SETTINGS
@given(data=st.data())
def test_contracts_lines_and_defined_data_load_whatever_they_hold(conn, tmp_path_factory, data) -> None:
    from pipelines.warehouse import details

    n = next(_examples)
    user, roots = f"MUDETAIL{n}", [f"IC{n:08X}-CCCC-{k}" for k in range(data.draw(st.integers(1, 3)))]
    folder = tmp_path_factory.mktemp("answer")
    risks.load_list(conn, land(folder, user, json.dumps([{"id": f"{r}::FO", "rev": "1-a"} for r in roots])), "x.json")
    raw_dir = folder / "raw"
    lines = [data.draw(detail_line(root)) for root in roots]

    def snapshot():
        tables = ("contracts", "contract_line_items", "contract_line_items__placeholders", "market_lines",
                  "defined_data", "facility_links")
        return {t: conn.execute(f"SELECT * EXCLUDE ({'fetched_at' if t == 'contracts' else 'root_id'}) FROM {t} "
                                f"WHERE root_id = ANY(?) ORDER BY ALL" if t == "contracts" else
                                f"SELECT * FROM {t} WHERE root_id = ANY(?) ORDER BY ALL", [roots]).fetchall()
                for t in tables}

    for k in range(2):  # the same answers landed twice: the second load changes nothing
        path = raw.details_dir(raw_dir, user) / f"2026010{k + 1}T000000000000Z.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        details.load_pending(conn, raw_dir, user)  # never raises
        if k == 0:
            first = snapshot()
    assert snapshot() == first
    assert {r for (r,) in conn.execute("SELECT root_id FROM contracts WHERE root_id = ANY(?)", [roots]).fetchall()} \
        == set(roots), "every root's contract is loaded, whatever it held"


def test_an_element_larger_than_duckdb_reads_by_default_is_set_aside_and_the_rest_loads(conn, tmp_path) -> None:
    """DuckDB's ``read_json_objects`` stops at an element of more than about 32 MB ("maximum_object_size
    exceeded"): one such row stopped every read of its answer, each sync."""
    from pipelines.extract import details, feed
    from pipelines.warehouse import quality

    user, big = "MUBIGROW", "x" * (40 << 20)
    text = json.dumps([{"id": "IC0BADBAD0-1::FO", "rev": "1-a", "updatedAt": "2026-01-01 10:00:00"},
                       {"id": "IC0BADBAD0-2::FO", "notes": big}, {"id": "IC0BADBAD0-3::FO", "rev": "1-b"}])
    landed = land(tmp_path, user, text)
    assert [(a.position, a.reason) for a in landed.set_aside] == [(2, f"larger than {documents.MAX_BYTES:,} characters")]
    risks.load_list(conn, landed, "x.json")
    assert {r for (r,) in conn.execute("SELECT risk_id FROM risk_visibility WHERE user_id = ?", [user]).fetchall()} \
        == {"IC0BADBAD0-1::FO", "IC0BADBAD0-3::FO"}
    assert quality.api_distinct_ids(conn, str(landed.path), landed.items, [2], landed.read_option) == 2
    assert set(details.roots_in_list(landed.path)) == {"IC0BADBAD0-1", "IC0BADBAD0-2", "IC0BADBAD0-3"}
    assert feed.newest_change(landed.path) == "2026-01-01 10:00:00"


def test_a_placement_twice_in_one_mi_answer_is_named(conn, tmp_path) -> None:
    """The unique-key check runs after the loader kept the last row of each placement: a placement sent twice
    with different money was never counted. The load says how many came twice, and a check names it."""
    from pipelines.warehouse import quality

    raw_dir, user = tmp_path / "raw", "MUTWICE"
    path = raw.mi_dir(raw_dir, user) / "20260101T000000000000Z.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([{"rootID": "IC0TWICE0-1", "premium": "100"}, {"rootID": "IC0TWICE0-1", "premium": "200"},
                                {"rootID": "IC0TWICE0-2", "premium": "300"}]))
    loaded = mireport.load_pending(conn, raw_dir)
    assert loaded.arrived_twice == 1
    assert not quality.arrived_once("rootID", loaded.arrived_twice).passed
    assert conn.execute("SELECT premium_raw FROM mi_report WHERE user_id = ? AND root_id = 'IC0TWICE0-1'",
                        [user]).fetchall() == [("200",)]
