"""Bad input never stops a sync and is never lost: a value no column can hold is NULL beside its kept
text, counted and named by a check; everything else loads. On both engines, from the same sandbox."""

from __future__ import annotations

import re

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from pipelines import config
from pipelines.client.documents import NUL_REASON
from pipelines.warehouse import postgres
from sandbox import SandboxServer
from sandbox.server import BAD_VALUES
from sandbox.world import MEMBERSHIP_BY_MU
from tests.pipeline.conftest import SUMO_IDS, Pipeline, check_results
from tests.postgres import private_postgres

ENGINES = ("duckdb", "postgresql")


@pytest.fixture(scope="module")
def postgres_server():
    """One private PostgreSQL server for the module; each test makes a database of its own in it."""
    with private_postgres("postgres_tests") as urls:
        yield urls["postgres_tests"]


class Warehouse:
    """The pipeline bound to one engine, and a query that reads that engine's warehouse."""

    def __init__(self, pipeline: Pipeline, settings: config.WarehouseConfig) -> None:
        self.pipeline, self.settings = pipeline, settings
        if settings.url:
            pipeline.defs = pipeline.bind(settings)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        if self.settings.url:
            numbered = iter(range(1, sql.count("?") + 1))
            return postgres.query(self.settings, re.sub(r"\?", lambda _: f"${next(numbered)}", sql), params)
        return self.pipeline.query(sql, params)


@pytest.fixture(params=ENGINES)
def warehouse(request, tmp_path, monkeypatch):
    with SandboxServer(seed=11, scale=0.1) as server:
        pipeline = Pipeline(server, tmp_path, monkeypatch)
        if request.param == "duckdb":
            yield Warehouse(pipeline, pipeline.warehouse)
            return
        url = fresh_database(request.getfixturevalue("postgres_server"),
                             "bad_" + request.node.name.split("[")[0].removeprefix("test_")[:40])
        yield Warehouse(pipeline, config.WarehouseConfig(path=pipeline.db_path, url=url))


def fresh_database(server_url: str, name: str) -> str:
    """An empty database ``name`` on the module's PostgreSQL server: its URL."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def sync_everything(pipeline: Pipeline, **faults) -> tuple[list[dg.ExecuteInProcessResult], dg.ExecuteInProcessResult]:
    """With ``faults`` on: the reference data, every organisation, then the MI report; each run succeeds."""
    pipeline.server.set_faults(**faults)
    assert pipeline.reference().success
    synced = [pipeline.sync(mu) for mu in SUMO_IDS]
    assert all(r.success for r in synced)
    mi = pipeline.mi()
    assert mi.success
    return synced, mi


def check_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    [data] = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
              and e.asset_check_evaluation_data.check_name == name]
    return {k: v.value for k, v in data.metadata.items()}


def test_values_no_column_can_hold_are_null_beside_their_text_and_the_rest_loads(warehouse) -> None:
    pipeline = warehouse.pipeline
    synced, mi = sync_everything(pipeline, bad_values=True)

    world = pipeline.server.world
    seen = {world.root(i).root_id for mu in SUMO_IDS
            for i in world.root_indexes(MEMBERSHIP_BY_MU[mu][1].company_id)}
    spoiled = {r for r in seen if world.find_root(r).index % 7 == 0}
    assert spoiled, "the sandbox spoiled some of the roots these organisations see"

    # every contract loaded, the spoiled ones too; their premium NULL beside its text, the others typed
    assert {r for (r,) in warehouse.query("SELECT root_id FROM contracts")} == seen
    premiums = dict(warehouse.query("SELECT root_id, amount FROM defined_data WHERE tag = 'Premium_Amount' "
                                    "AND value = ?", [BAD_VALUES["defined_premium"]]))
    assert set(premiums) == spoiled and set(premiums.values()) == {None}
    [(typed,)] = warehouse.query("SELECT count(*) FROM defined_data WHERE tag = 'Premium_Amount' AND amount IS NOT NULL")
    assert typed > 0
    lines = warehouse.query("SELECT root_id, written_pct FROM market_lines WHERE written_raw = ?", [BAD_VALUES["line"]])
    assert lines and {r for r, _ in lines} <= spoiled and {pct for _, pct in lines} == {None}

    # the MI report: every placement has its row; the three spoiled ones hold NULL beside the text
    [(placements,)] = warehouse.query("SELECT count(*) FROM mi_report")
    assert placements == sum(len(list(world.root_indexes(MEMBERSHIP_BY_MU[mu][1].company_id))) for mu in SUMO_IDS)
    for field, text in BAD_VALUES["mi"]:
        column, raw = {"premium": ("premium_amount", "premium_raw"), "brokerage": ("brokerage_pct", "brokerage_raw")}[field]
        got = warehouse.query(f"SELECT {column} FROM mi_report WHERE {raw} = ?", [text])  # noqa: S608
        assert len(got) == len(SUMO_IDS) and {v for (v,) in got} == {None}, (field, text, got)
    [(currency,)] = warehouse.query("SELECT DISTINCT premium_currency FROM mi_report WHERE premium_raw = 'EUR 1,250'")
    assert currency == "USD", "the currency field is kept; only the amount that contradicts it is refused"

    # each is counted and named by its check
    unparsed = check_metadata(mi, "mi_report_values_parse")["unparsed"]
    assert {BAD_VALUES["mi"][0][1], "EUR 1,250"} <= set(unparsed["premium"]["examples"])
    assert unparsed["brokerage"]["examples"] == [BAD_VALUES["mi"][2][1]]
    assert check_results(mi)["mi_report_values_parse"] is False
    lines_named = [check_metadata(r, "market_lines_values_parse") for r in synced]
    assert any(BAD_VALUES["line"] in m["unparsed"].get("writtenLinePercentageString", {}).get("examples", [])
               for m in lines_named)
    defined_named = [check_metadata(r, "defined_data_values_parse")["unparsed"] for r in synced]
    assert any(BAD_VALUES["defined_premium"] in m.get("*_Amount", {}).get("examples", []) for m in defined_named)


def test_a_field_nobody_modelled_loads_and_is_reported_on_both_engines(warehouse) -> None:
    """The first unknown field stopped every load into PostgreSQL (``schema_drift``'s upsert named two of
    its key's three columns); the DuckDB file took it."""
    pipeline = warehouse.pipeline
    pipeline.server.set_faults(drift="added", contract_drift="renamed")
    assert pipeline.reference().success
    results = [pipeline.sync(mu, raise_on_error=False) for mu in SUMO_IDS]
    assert all(r.success for r in results)
    assert not any(check_results(r)["risks_schema_drift"] for r in results)
    drift = set(warehouse.query("SELECT endpoint, field, kind FROM schema_drift"))
    assert {("/risks/{riskID}", "control.placingStatus", "new_field"),
            ("/risks/{riskID}", "control.status", "missing_field")} <= drift
    assert any(endpoint == "/risks" and kind == "new_field" for endpoint, _, kind in drift)
    [(risks,)] = warehouse.query("SELECT count(*) FROM risks")
    assert risks > 0


def test_documents_no_loader_can_take_are_set_aside_reported_and_the_rest_loads(warehouse) -> None:
    """A list row nested 3,000 levels deep stopped its organisation (``RecursionError`` in the change check and
    the download), an MI row as deep stopped the MI report; a row that is not an object, has no id, or has an
    id outside the grammar was dropped without a word, or sent to the API as a URL."""
    pipeline = warehouse.pipeline
    results, mi = sync_everything(pipeline, hostile_documents=True)

    world = pipeline.server.world
    aside = warehouse.query("SELECT user_id, endpoint, document_id, reason, position, path FROM quarantine")
    lists = [row for row in aside if row[1] == "/risks"]
    for mu in SUMO_IDS:
        reasons = sorted(why for u, _, _, why, _, _ in lists if u == mu)
        assert reasons == sorted(["nested deeper than 64 levels", "not a JSON object (a int)", "no id",
                                  "id outside the platform's id grammar"]), (mu, reasons)
    assert {i for _, _, i, why, _, _ in lists if why.startswith("id outside")} == {"IC../../../escaped::FO"}
    assert all((pipeline.raw_dir / path).exists() for *_, path in aside), "each kept in the landing"

    # everything else of each list loaded: every risk the organisation sees but the first row's
    for mu, result in zip(SUMO_IDS, results, strict=True):
        checks = check_results(result)
        assert checks["risks_quarantine"] is False
        assert checks["risk_visibility_matches_api"], "the risks loaded equal the answer's, less those set aside"
        company = MEMBERSHIP_BY_MU[mu][1].company_id
        [(seen,)] = warehouse.query("SELECT count(*) FROM risk_visibility WHERE user_id = ?", [mu])
        listed = sum(1 for _ in world_rows(world, company))
        assert seen == listed - 1
    [(escaped,)] = warehouse.query("SELECT count(*) FROM risks WHERE risk_id LIKE '%..%'")
    assert escaped == 0
    assert not any("escaped" in str(p) for p in pipeline.raw_dir.rglob("*"))
    asked = pipeline.server.sandbox.stats_snapshot()
    assert not any("escaped" in str(path) for path in asked), "an id outside the grammar never became a URL"

    # a contract that is not a JSON object: its root's fetch fails, saying why, and the other contracts load
    seen = {world.root(i).root_id for mu in SUMO_IDS for i in world.root_indexes(MEMBERSHIP_BY_MU[mu][1].company_id)}
    listed_array = {r for r in seen if world.find_root(r).index % 13 == 0}
    failed = warehouse.query("SELECT root_id, error FROM detail_failures")
    assert listed_array and {r for r, _ in failed} == listed_array
    assert all("not a JSON object (a list)" in error for _, error in failed)
    loaded = {r for (r,) in warehouse.query("SELECT root_id FROM contracts")}
    assert loaded == {r for r in seen if r not in listed_array} - {r for r in seen if not world.find_root(r).suffixes()}

    # the MI report: the deep row of each answer set aside, the rest loaded
    mi_aside = [row for row in aside if row[1] == "/mireport/prepare"]
    assert sorted(u for u, *_ in mi_aside) == sorted(SUMO_IDS)
    assert {why for _, _, _, why, _, _ in mi_aside} == {"nested deeper than 64 levels"}
    assert check_results(mi)["mi_report_quarantine"] is False
    [(placements,)] = warehouse.query("SELECT count(*) FROM mi_report")
    assert placements == sum(len(list(world.root_indexes(MEMBERSHIP_BY_MU[mu][1].company_id))) for mu in SUMO_IDS) - 3

    # the platform stops sending them: the list's records leave with them, the MI rows' stay (never sent again)
    pipeline.server.set_faults(hostile_documents=False)
    again = pipeline.sync(SUMO_IDS[0])
    assert check_results(again)["risks_quarantine"]
    left = warehouse.query("SELECT endpoint FROM quarantine WHERE user_id = ?", [SUMO_IDS[0]])
    assert [e for (e,) in left] == ["/mireport/prepare"]


def world_rows(world, company_id: str):
    from sandbox import documents

    return documents.risk_rows(world, company_id)


def test_an_mu_id_outside_the_grammar_is_named_once_and_the_other_organisations_sync(tmp_path) -> None:
    """``uniqueID`` from the corporate list became a folder of the landing: ``MU../../../escaped`` wrote the
    risk list, its manifest and an MI answer outside it."""
    from sandbox import BUCKET, SUMO_REFRESH_TOKEN
    from tests.pipeline.test_cli import run

    hostile = "MU../../../escaped"
    with SandboxServer(seed=5, scale=0.1) as server:
        server.set_faults(hostile_member=hostile)
        env = {"WHITESPACE_SYNC_URL": server.sync_url, "WHITESPACE_BUCKET": BUCKET,
               "WHITESPACE_API_URL": server.api_url, "WHITESPACE_REFRESH_TOKEN": SUMO_REFRESH_TOKEN,
               "WHITESPACE_USER_NAME": "Sam Sumo"}
        out = run(["sync"], tmp_path, env)
    assert out.returncode == 0, out.stdout + out.stderr
    said = [line for line in (out.stdout + out.stderr).splitlines() if hostile in line]
    assert len(said) == 1 and "outside the platform's id grammar" in said[0], said
    assert "[3/3]" in out.stdout
    assert not any("escaped" in p.name for p in tmp_path.rglob("*")), "nothing written under that id, anywhere"
    assert not any("escaped" in p.name for p in tmp_path.parent.rglob("*escaped*"))
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(DISTINCT user_id) FROM risk_visibility").fetchone()[0] == 3


def test_reference_rows_without_their_key_are_counted_and_an_empty_answer_wipes_nothing(warehouse) -> None:
    """Companies without ``companyId``, teams without ``channel`` and members without ``uniqueID`` were dropped
    without a count; a ``[]`` corporate answer emptied organisations, teams and users."""
    pipeline = warehouse.pipeline
    assert pipeline.reference().success
    before = {t: warehouse.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("organisations", "teams", "users")}

    pipeline.server.set_faults(corporate="keyless")
    keyless = pipeline.reference()
    assert keyless.success and check_results(keyless)["organisations_quarantine"] is False
    assert check_results(keyless)["organisations_key_once_in_answer"] is False, "a company that came twice is named"
    assert check_results(keyless)["users_key_once_in_answer"] is False
    reasons = sorted(r for (r,) in warehouse.query("SELECT reason FROM quarantine WHERE endpoint = '/shared/corporate'"))
    assert [r.split(" (")[0] for r in reasons] == ["company without companyId", "member without uniqueID",
                                                   "team without channel"]
    assert {t: warehouse.query(f"SELECT count(*) FROM {t}")[0][0] for t in before} == before, "the rest loads"

    pipeline.server.set_faults(corporate="empty")
    empty = pipeline.reference(raise_on_error=False)
    assert not empty.success
    [error] = [e.step_failure_data.error for e in empty.all_events if e.is_step_failure]
    while error.cause is not None:
        error = error.cause
    assert "came back with 0 companies" in error.message and "left as they were" in error.message, error.message
    assert {t: warehouse.query(f"SELECT count(*) FROM {t}")[0][0] for t in before} == before, "nothing wiped"

    pipeline.server.set_faults(corporate="")
    fixed = pipeline.reference()
    assert fixed.success and check_results(fixed)["organisations_quarantine"], "the fixed answer clears the record"
    assert check_results(fixed)["organisations_key_once_in_answer"] and check_results(fixed)["users_key_once_in_answer"]


def test_a_nul_character_is_set_aside_alike_on_both_engines(tmp_path, monkeypatch, request) -> None:
    """A DuckDB file can store U+0000, PostgreSQL cannot: the same answers must give the same warehouse on
    both, so a document holding one is set aside on both (kept in the landing, reported)."""
    found = {}
    for engine in ENGINES:
        with SandboxServer(seed=11, scale=0.1) as server:
            pipeline = Pipeline(server, tmp_path / engine, monkeypatch)
            settings = pipeline.warehouse
            if engine == "postgresql":
                url = fresh_database(request.getfixturevalue("postgres_server"), "bad_nul")
                settings = config.WarehouseConfig(path=pipeline.db_path, url=url)
            warehouse = Warehouse(pipeline, settings)
            sync_everything(pipeline, nul_text=True)
            if engine == "duckdb":  # the file could have kept one; it keeps none
                for table, column in (("risks", "insured_name"), ("contracts", "insured_name"), ("mi_report", "insured")):
                    assert pipeline.query(f"SELECT count(*) FROM {table} WHERE strpos({column}, chr(0)) > 0") == [(0,)]
            found[engine] = {
                "aside": sorted(warehouse.query("SELECT user_id, endpoint, document_id, reason FROM quarantine")),
                "failed": sorted((u, r, e.split(" (HTTP ")[0]) for u, r, e in  # the sandbox's port aside
                                 warehouse.query("SELECT user_id, root_id, error FROM detail_failures")),
                "risks": sorted(r for (r,) in warehouse.query("SELECT risk_id FROM risks")),
                "mi": sorted(warehouse.query("SELECT user_id, root_id, insured FROM mi_report")),
            }
    duck, pg = found["duckdb"], found["postgresql"]
    assert duck == pg
    reasons = {(endpoint, reason) for _, endpoint, _, reason in duck["aside"]}
    assert reasons == {("/risks", NUL_REASON), ("/mireport/prepare", NUL_REASON)}
    assert len(duck["aside"]) == 2 * len(SUMO_IDS)
    assert duck["failed"] and all(NUL_REASON in error for *_, error in duck["failed"])
    assert duck["risks"] and duck["mi"]
