"""Bad input never stops a sync and is never lost: a value no column can hold is NULL beside its kept
text, counted and named by a check; everything else loads. On both engines, from the same sandbox."""

from __future__ import annotations

import re

import dagster as dg
import pytest
import sqlalchemy as sa

from pipelines import config
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
        base = request.getfixturevalue("postgres_server")
        name = "bad_" + request.node.name.split("[")[0].removeprefix("test_")[:40]
        engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        url = base.rsplit("/", 1)[0] + "/" + name
        yield Warehouse(pipeline, config.WarehouseConfig(path=pipeline.db_path, url=url))


def check_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    [data] = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
              and e.asset_check_evaluation_data.check_name == name]
    return {k: v.value for k, v in data.metadata.items()}


def test_values_no_column_can_hold_are_null_beside_their_text_and_the_rest_loads(warehouse) -> None:
    pipeline = warehouse.pipeline
    pipeline.server.set_faults(bad_values=True)
    assert pipeline.reference().success
    synced = [pipeline.sync(mu) for mu in SUMO_IDS]
    assert all(r.success for r in synced)
    mi = pipeline.mi()
    assert mi.success

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
