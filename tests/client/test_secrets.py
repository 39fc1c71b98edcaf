"""Neither the renewable token nor any id_token shows up in logs, exception texts or reprs."""

from __future__ import annotations

import logging
import traceback

import pytest

from pipelines.client import RetryPolicy, Secret, WhitespaceClient, redact
from sandbox import SINGLE_REFRESH_TOKEN, SUMO_REFRESH_TOKEN, SandboxServer
from tests.conftest import record_issued_tokens, settings_for


@pytest.fixture
def issued(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return record_issued_tokens(sandbox, monkeypatch)


def test_a_run_with_faults_leaks_no_token(sandbox, issued, waits, caplog, tmp_path) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    sandbox.set_faults(token_dies_after=2, rate_limit=1, retry_after="1")
    with WhitespaceClient(settings_for(sandbox, SUMO_REFRESH_TOKEN), RetryPolicy(max_attempts=3)) as c:
        texts.append(repr(c) + repr(c.tokens) + repr(c.settings))
        for org in c.discover_organisations():
            c.for_user(org.user_id).download_risks(tmp_path / f"{org.user_id}.json")
        for faults in ({"html": 5}, {"truncate": 5}, {"drop": 5}, {"error_burst": 5}):
            sandbox.set_faults(**faults, only="/api/risks")
            try:
                c.for_user(org.user_id).risks()
            except Exception as exc:  # noqa: BLE001 - its text is what is checked
                texts.append("".join(traceback.format_exception(exc)))
        sandbox.set_faults(drift="", only="")
        sandbox.admin("revoke", refresh_token=SUMO_REFRESH_TOKEN)
        c.tokens.invalidate(c.tokens.generation)
        try:
            c.for_user(org.user_id).risks()
        except Exception as exc:  # noqa: BLE001
            texts.append("".join(traceback.format_exception(exc)))
    assert len(issued) >= 2 and len(texts) >= 5
    everything = caplog.text + "\n".join(texts)
    assert "refresh_token=***" in caplog.text, "the refresh URL is logged, redacted"
    for secret in [SUMO_REFRESH_TOKEN, *issued]:
        assert secret not in everything


def test_secret_hides_itself() -> None:
    s = Secret(SINGLE_REFRESH_TOKEN)
    assert SINGLE_REFRESH_TOKEN not in f"{s} {s!r} {[s]}" and s.reveal() == SINGLE_REFRESH_TOKEN


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("GET https://h/sync/b/_oidc_refresh?refresh_token=abc.def-123&x=1", "abc.def-123"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl in text", "eyJzdWIiOiJ4In0"),
    ],
)
def test_redact(text: str, hidden: str) -> None:
    assert hidden not in redact(text)
