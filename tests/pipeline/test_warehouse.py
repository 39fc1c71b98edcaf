"""The warehouse contract, table by table, through the definitions' own jobs."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from pipelines.warehouse import risks as risk_loader
from sandbox import SandboxServer
from tests.pipeline.conftest import LOAD_TIMES, SUMO_IDS, Pipeline, check_results, materializations, rows_of

CONTRACT = {
    "risks": ["risk_id", "root_id", "rev", "doc_type", "umr", "insured_name", "status", "contract_type", "is_facility",
              "placing_broker_channel", "created_at", "updated_at", "raw"],
    "risk_channels": ["risk_id", "channel", "company_id", "team_id", "position"],
    "risk_visibility": ["risk_id", "user_id", "synced_at"],
    "organisations": ["company_id", "name", "role"],
    "teams": ["channel", "company_id", "team_id", "name"],
    "users": ["user_id", "name", "company_id"],
}


def test_contract_columns_types_and_documentation(pipeline) -> None:
    pipeline.start_from("synced")
    for table, columns in CONTRACT.items():
        have = {name: (dtype, comment) for name, dtype, comment in pipeline.query(
            "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE table_name = ?", [table])}
        assert set(columns) <= set(have), table
        assert all(comment for _, comment in have.values()), f"every column of {table} is documented"
    types = dict(pipeline.query("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'risks'"))
    assert types["created_at"] == types["updated_at"] == "TIMESTAMP"
    assert types["is_facility"] == "BOOLEAN" and types["raw"] == "JSON"


def test_values_match_the_api(pipeline) -> None:
    pipeline.start_from("synced")
    from pipelines.client import WhitespaceClient
    from tests.conftest import settings_for

    with WhitespaceClient(settings_for(pipeline.server)) as c:
        api_rows = {r["id"]: r for r in c.for_user(SUMO_IDS[0]).risks()}
    rows = pipeline.query("SELECT risk_id, umr, insured_name, status, is_facility, updated_at, raw FROM risks "
                          "WHERE risk_id IN (SELECT risk_id FROM risk_visibility WHERE user_id = ?)", [SUMO_IDS[0]])
    assert len(rows) == len(api_rows)
    for risk_id, umr, name, status, is_facility, updated_at, raw in rows:
        api = api_rows[risk_id]
        assert umr == api["umr"].strip() and name == api["InsuredName"].strip()
        assert status == api["Status"] and is_facility == api["IsFacility"]
        assert updated_at.strftime("%Y-%m-%d %H:%M:%S") == api["updatedAt"].replace("T", " ")[:19]
        assert json.loads(raw) == api, "raw keeps the object exactly"
    assert any(api["umr"] != api["umr"].strip() for api in api_rows.values())


def test_channels_are_split_into_company_and_team(pipeline) -> None:
    pipeline.start_from("synced")
    rows = pipeline.query("SELECT channel, company_id, team_id, position FROM risk_channels ORDER BY risk_id, position")
    assert rows and all(ch == f"{co.lower()}_{team}" for ch, co, team, _ in rows)
    assert pipeline.query("SELECT count(*) FROM risk_channels c LEFT JOIN teams t USING (channel) "
                          "WHERE t.channel IS NULL")[0][0] == 0, "every channel is a known team"


def test_a_risk_seen_by_three_organisations_is_one_row(pipeline) -> None:
    pipeline.start_from("synced")
    shared = pipeline.query("SELECT risk_id FROM risk_visibility GROUP BY 1 HAVING count(*) = 3")
    assert shared
    risk_id = shared[0][0]
    assert pipeline.query("SELECT count(*) FROM risks WHERE risk_id = ?", [risk_id])[0][0] == 1
    assert {r[0] for r in pipeline.query("SELECT user_id FROM risk_visibility WHERE risk_id = ?", [risk_id])} == set(SUMO_IDS)


def test_a_warehouse_started_from_a_copy_is_the_one_the_jobs_make(pipeline, tmp_path) -> None:
    """Many tests start from ``Pipeline.start_from``: a copy of what the jobs made once in the test process.
    The copy is what running the jobs here makes, every table row for row (when each load ran, and which
    landed file it read, aside), and its sandbox answers the next MI run from the same cursors. A sandbox
    that has been moved on is refused, not copied over."""
    pipeline.sync_all()
    pipeline.mi()
    with SandboxServer(seed=11, scale=0.25) as server:
        copied = Pipeline(server, tmp_path / "copied", None)
        copied.start_from("mi")
        assert server.sandbox.mi_cursor == pipeline.server.sandbox.mi_cursor != {}
        server.advance()
        with pytest.raises(AssertionError, match="an untouched sandbox"):
            Pipeline(server, tmp_path / "moved", None).start_from("synced")
    when = LOAD_TIMES | {"fetched_at", "landed_at", "path"}
    want = rows_of(pipeline.db_path, skip_columns=when)
    assert rows_of(copied.db_path, skip_columns=when) == want
    assert sum(map(len, want.values())) > 10_000


def test_checks_pass_and_metadata_tells_what_changed(pipeline) -> None:
    first = pipeline.sync_all()[0]
    assert check_results(first) and all(check_results(first).values())
    meta = materializations(first, "risks")
    assert meta["added"] == meta["partition_rows"] > 250 and meta["changed"] == meta["gone"] == 0
    assert "|" in meta["preview"]
    pipeline.server.advance(changed_fraction=0.1, new_roots=20, removed_fraction=0.02)
    again = materializations(pipeline.sync(SUMO_IDS[0]), "risks")
    assert again["added"] > 0 and again["changed"] > 0 and again["gone"] > 0


def test_a_load_that_loses_a_risk_fails_the_api_count_check(pipeline, monkeypatch) -> None:
    """The answer's ids are counted anew, from the landed file, beside the load: a load that leaves one of
    the organisation's risks out (a delta load here) is caught."""
    pipeline.start_from("synced")
    pipeline.server.advance(changed_fraction=0.1, new_roots=5)
    load = risk_loader.load_list

    def losing_one(conn, landed, *args, **kwargs):
        result = load(conn, landed, *args, **kwargs)
        conn.execute("DELETE FROM risk_visibility WHERE user_id = ? AND risk_id = "
                     "(SELECT min(risk_id) FROM risk_visibility WHERE user_id = ?)", [landed.user_id] * 2)
        return result

    monkeypatch.setattr(risk_loader, "load_list", losing_one)
    result = pipeline.sync(SUMO_IDS[0], raise_on_error=False)
    assert materializations(result, "risks")["load"] == "delta"
    [evaluation] = [e.asset_check_evaluation_data for e in result.all_events
                    if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                    and e.asset_check_evaluation_data.check_name == "risk_visibility_matches_api"]
    assert not evaluation.passed
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["api_distinct_ids"] == meta["warehouse_rows"] + 1


def test_running_the_same_sync_twice_changes_no_count(pipeline) -> None:
    pipeline.start_from("synced")
    before = pipeline.counts()
    results = pipeline.sync_all()
    assert pipeline.counts() == before
    meta = materializations(results[0], "risks")
    assert meta["added"] == meta["changed"] == meta["gone"] == 0


def test_a_crash_mid_load_leaves_the_previous_state(pipeline, monkeypatch) -> None:
    pipeline.start_from("synced")
    before = pipeline.counts()
    state = pipeline.query("SELECT * FROM sync_state ORDER BY user_id")
    pipeline.server.advance(changed_fraction=0.3, new_roots=50, removed_fraction=0.05)

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patched:
        patched.setattr(risk_loader, "_record", crash)
        result = pipeline.sync(SUMO_IDS[0], raise_on_error=False)
    assert not result.success
    assert pipeline.counts() == before
    assert pipeline.query("SELECT * FROM sync_state ORDER BY user_id") == state


def test_drift_is_kept_reported_and_never_drops_anything(pipeline) -> None:
    pipeline.reference()
    assert check_results(pipeline.sync(SUMO_IDS[1]))["risks_schema_drift"], "the sandbox's own list is known"
    pipeline.server.set_faults(drift="added")
    result = pipeline.sync(SUMO_IDS[1])
    assert result.success and check_results(result)["risks_schema_drift"] is False, "a WARN check: alerted, loaded"
    drift = materializations(result, "risks")["schema_drift"]
    assert {d["field"] for d in drift} == {"RiskRegion", "labels"}
    assert pipeline.query("SELECT count(*) FROM risks__labels")[0][0] > 0
    assert pipeline.query("SELECT count(*) FROM risks WHERE raw->>'RiskRegion' IS NOT NULL")[0][0] > 0
    pipeline.server.set_faults(drift="changed_type")
    result = pipeline.sync(SUMO_IDS[1])
    assert {(d["field"], d["kind"]) for d in materializations(result, "risks")["schema_drift"]} == {
        ("IsFacility", "type_change")}
    assert pipeline.query("SELECT count(*) FROM risks WHERE is_facility IS NULL")[0][0] == 0, "'true' still parses"
    kinds = set(pipeline.query("SELECT field, kind FROM schema_drift"))
    assert kinds == {("RiskRegion", "new_field"), ("labels", "new_field"), ("IsFacility", "type_change")}
    assert pipeline.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'risks__labels'")[0][0] == 1


def test_duplicates_and_empty_lists(pipeline) -> None:
    pipeline.reference()
    pipeline.server.set_faults(duplicate_rows=5)
    meta = materializations(pipeline.sync(SUMO_IDS[2]), "risks")
    assert meta["duplicates_in_answer"] == 5 and meta["api_items"] == meta["partition_rows"] + 5
    pipeline.server.set_faults(duplicate_rows=0, empty_list_for="MCNEILLIEUWR")
    assert not pipeline.sync(SUMO_IDS[2], raise_on_error=False).success, "an empty answer is refused once"
    result = pipeline.sync(SUMO_IDS[2])  # the same answer a second time is accepted
    assert all(check_results(result).values())
    assert pipeline.query("SELECT count(*) FROM risk_visibility WHERE user_id = ?", [SUMO_IDS[2]])[0][0] == 0


def test_rebuild_from_raw_needs_no_api(pipeline) -> None:
    from pipelines.app.sync import rebuild

    pipeline.start_from("marts")
    tables = ("contracts", "market_lines", "contract_line_items", "defined_data", "mi_report", "mi_report_carriers",
              "mart_placements", "mart_carrier_participation", "mart_book_premium", "mart_carrier_shares")
    before = pipeline.counts()
    details_before = {t: pipeline.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    requests_before = pipeline.server.stats()
    pipeline.db_path.unlink()
    counts = rebuild(pipeline.warehouse, log=lambda *_: None)
    assert pipeline.counts() == before and counts["risks"] == before["risks"]
    assert {t: counts[t] for t in tables} == details_before, "every table it names is rebuilt, details and marts too"
    assert all(details_before.values())
    assert pipeline.server.stats() == requests_before


@pytest.mark.parametrize("table", ["risks", "risk_channels", "risk_visibility"])
def test_schema_evolution_adds_columns(pipeline, table) -> None:
    import duckdb

    from pipelines.warehouse import db

    pipeline.start_from("synced")
    with duckdb.connect(str(pipeline.db_path)) as conn:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN local_note VARCHAR")
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {db.existing_columns(conn, table)[-2]}")
    pipeline.sync_all()
    cols = [c for (c,) in pipeline.query("SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table])]
    assert "local_note" in cols, "nothing is dropped"
    from models import metadata

    assert {c.name for c in metadata.tables[table].columns} <= set(cols), "missing columns come back"


def test_a_new_warehouse_file_appears_only_with_its_whole_schema(tmp_path, monkeypatch) -> None:
    """A writer killed while creating the schema must not leave a file a reader opens without its tables."""
    import duckdb

    from models import metadata
    from pipelines.warehouse import db

    path = tmp_path / "warehouse.duckdb"
    made = []
    real = db.ensure_table

    def dies_half_way(conn, table, have=None):
        if len(made) == len(metadata.sorted_tables) // 2:
            assert not path.exists(), "the file is not there while its schema is being made"
            raise KeyboardInterrupt("killed while creating the schema")
        made.append(table.name)
        return real(conn, table, have)

    monkeypatch.setattr(db, "ensure_table", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        with db.session(path):
            pass
    assert made and not path.exists()
    monkeypatch.setattr(db, "ensure_table", real)
    with db.session(path):
        pass
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = {t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".warehouse.duckdb.new")) == []


def test_a_warehouse_an_older_version_made_gets_the_models_documentation(tmp_path) -> None:
    """A BI tool shows the warehouse's own comments as its data dictionary. A warehouse made before a
    table's or column's comment was corrected (or made without it) gets the model's on the next write
    session; a column or comment of the user's own, the model does not declare, is left as it is."""
    import duckdb

    from models import metadata
    from pipelines.warehouse import db

    path = tmp_path / "warehouse.duckdb"
    with db.session(path):
        pass
    with duckdb.connect(str(path)) as conn:  # as an older version left it
        conn.execute("COMMENT ON COLUMN risks.status IS 'Status (in USD)'")
        conn.execute("COMMENT ON COLUMN sync_state.synced_at IS NULL")
        conn.execute("COMMENT ON TABLE risk_channels IS 'old words'")
        conn.execute("ALTER TABLE risks ADD COLUMN local_note VARCHAR")
        conn.execute("COMMENT ON COLUMN risks.local_note IS 'the analysts own'")
    with db.session(path):
        pass
    with duckdb.connect(str(path), read_only=True) as conn:
        columns = {(t, c): comment for t, c, comment in conn.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = 'main'").fetchall()}
        tables = dict(conn.execute("SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main'").fetchall())
    for table in metadata.sorted_tables:
        assert tables[table.name] == table.comment, table.name
        for column in table.columns:
            assert columns[table.name, column.name] == column.comment, (table.name, column.name)
    assert columns["risks", "local_note"] == "the analysts own"
