"""Reliability fixtures: the warehouse's fingerprint, and the truth it should match."""

from __future__ import annotations

import hashlib

import duckdb
import pytest

from pipelines.client import WhitespaceClient
from tests.conftest import settings_for

FINGERPRINT_SQL = {
    "risks": "SELECT risk_id, rev, umr, insured_name, status, is_facility, created_at, updated_at FROM risks",
    "risk_channels": "SELECT risk_id, position, channel FROM risk_channels",
    "risk_visibility": "SELECT risk_id, user_id FROM risk_visibility",
    "contracts": "SELECT root_id, rev, status, inception_date FROM contracts",
    "market_lines": "SELECT line_set_id, line_position, impression_position, written_pct, signed_pct FROM market_lines",
}


def fingerprint(db_path) -> dict[str, tuple[int, str]]:
    """(rows, hash of the sorted rows) per table: equal fingerprints mean equal data."""
    out = {}
    with duckdb.connect(str(db_path), read_only=True) as conn:
        for table, sql in FINGERPRINT_SQL.items():
            rows = sorted(map(repr, conn.execute(sql).fetchall()))
            out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


INTEGRITY = {
    "duplicate risk ids": "SELECT count(*) - count(DISTINCT risk_id) FROM risks",
    "duplicate contracts": "SELECT count(*) - count(DISTINCT root_id) FROM contracts",
    "channels without risk": "SELECT count(*) FROM risk_channels WHERE risk_id NOT IN (SELECT risk_id FROM risks)",
    "visibility without risk": "SELECT count(*) FROM risk_visibility WHERE risk_id NOT IN (SELECT risk_id FROM risks)",
    "risks nobody sees": "SELECT count(*) FROM risks WHERE risk_id NOT IN (SELECT risk_id FROM risk_visibility)",
    "null root ids": "SELECT count(*) FROM risks WHERE coalesce(root_id, '') = ''",
    "line items without contract": "SELECT count(*) FROM contract_line_items WHERE root_id NOT IN (SELECT root_id FROM contracts)",
    "partition differs from its answer": """SELECT count(*) FROM sync_state s WHERE distinct_risks <>
         (SELECT count(*) FROM risk_visibility v WHERE v.user_id = s.user_id)""",
}
"""What the asset checks assert, as SQL: each counts what must be zero."""


def integrity_problems(where) -> list[str]:
    """The ``INTEGRITY`` rules a warehouse breaks: a DuckDB file that must open, or an open connection (a
    copy of a PostgreSQL warehouse)."""
    if isinstance(where, duckdb.DuckDBPyConnection):
        return [name for name, sql in INTEGRITY.items() if where.execute(sql).fetchone()[0]]
    with duckdb.connect(str(where), read_only=True) as conn:
        return integrity_problems(conn)


@pytest.fixture
def truth(pipeline):
    """The distinct risk ids and revisions each organisation's list holds, asked without faults."""
    def ask(user_id: str) -> set[tuple[str, str]]:
        with WhitespaceClient(settings_for(pipeline.server)) as client:
            return {(r["id"], r["rev"]) for r in client.for_user(user_id).risks()}
    return ask
