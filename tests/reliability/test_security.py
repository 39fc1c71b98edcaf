"""A whole sync with faults leaks no token: logs, Dagster events, run config, errors, warehouse, raw files."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.client import retry
from pipelines.defs.resources import WhitespaceResource
from sandbox import SUMO_REFRESH_TOKEN
from tests.conftest import record_issued_tokens
from tests.pipeline.conftest import SUMO_IDS


@pytest.fixture
def issued(pipeline, monkeypatch) -> list[str]:
    return record_issued_tokens(pipeline.server, monkeypatch)


def everything_written(pipeline, results) -> str:
    parts = []
    for result in results:
        for entry in pipeline.instance.all_logs(result.run_id):
            parts.append(entry.message or "")
            if entry.dagster_event is not None:
                parts.append(repr(entry.dagster_event))
        run = pipeline.instance.get_run_by_id(result.run_id)
        parts.append(repr(run.run_config) + repr(run.tags))
    with duckdb.connect(str(pipeline.db_path), read_only=True) as conn:
        for (table,) in conn.execute("SELECT table_name FROM information_schema.tables").fetchall():
            parts.append(repr(conn.execute(f'SELECT * FROM "{table}"').fetchall()))
    for path in Path(pipeline.raw_dir).rglob("*"):
        if path.is_file():
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def test_a_sync_with_faults_leaks_no_token(pipeline, issued, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(retry, "sleep", lambda s: None)
    server = pipeline.server
    # five faults in a row at most: every request, the token refresh included, gets six tries in all
    server.set_faults(token_dies_after=25, rate_limit=2, retry_after="1", drop=1, truncate=1, html=1)
    results = [pipeline.reference()] + [pipeline.sync(mu, raise_on_error=False) for mu in SUMO_IDS]
    server.admin("revoke", refresh_token=SUMO_REFRESH_TOKEN)
    server.set_faults(token_dies_after=1)
    server.advance(changed_fraction=0.2)
    results.append(pipeline.sync(SUMO_IDS[0], raise_on_error=False))  # fails: the token is rejected
    assert [r.success for r in results] == [True, True, True, True, False]
    assert len(issued) >= 3
    text = caplog.text + everything_written(pipeline, results)
    assert "refresh_token=***" in text
    for secret in [SUMO_REFRESH_TOKEN, *issued]:
        assert secret not in text


def test_run_config_names_the_variable_never_its_value(pipeline, monkeypatch) -> None:
    monkeypatch.setenv("WHITESPACE_REFRESH_TOKEN", SUMO_REFRESH_TOKEN)

    @dg.asset
    def probe(whitespace: WhitespaceResource) -> None:
        with whitespace.client() as client:
            assert client.version()

    resource = WhitespaceResource(**{**pipeline.server.login(), "refresh_token": dg.EnvVar("WHITESPACE_REFRESH_TOKEN")})
    result = dg.materialize([probe], resources={"whitespace": resource}, instance=pipeline.instance)
    run = pipeline.instance.get_run_by_id(result.run_id)
    shown = repr(run.run_config) + repr(resource) + repr(dg.Definitions(assets=[probe], resources={"whitespace": resource}))
    assert SUMO_REFRESH_TOKEN not in shown and "WHITESPACE_REFRESH_TOKEN" in repr(resource)
    assert result.success
