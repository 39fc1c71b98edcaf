"""Data quality rules as SQL: each returns (passed, details) for an ``AssetCheckResult``."""

from __future__ import annotations

import dagster as dg
import duckdb

CHANNEL_PATTERN = "^[a-z0-9]+_[A-Za-z0-9]+$"


def _count(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    return int(conn.execute(sql, params or []).fetchone()[0])


def unique_key(conn, table: str, key: str) -> dg.AssetCheckResult:
    dupes = _count(conn, f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)")  # noqa: S608
    return dg.AssetCheckResult(check_name=f"{table}_unique_key", passed=dupes == 0,
                               metadata={"duplicate_keys": dupes, "key": key}, asset_key=table)


def has_parent(conn, child: str, parent: str, column: str, parent_column: str | None = None) -> dg.AssetCheckResult:
    orphans = _count(conn, f"SELECT count(*) FROM {child} WHERE {column} NOT IN (SELECT {parent_column or column} FROM {parent})")  # noqa: S608
    return dg.AssetCheckResult(check_name=f"{child}_has_parent", passed=orphans == 0,
                               metadata={"orphan_rows": orphans, "parent": parent}, asset_key=child)


def no_null_root_ids(conn) -> dg.AssetCheckResult:
    nulls = _count(conn, "SELECT count(*) FROM risks WHERE root_id IS NULL OR root_id = ''")
    return dg.AssetCheckResult(check_name="risks_root_id_not_null", passed=nulls == 0,
                               metadata={"null_root_ids": nulls}, asset_key="risks")


def channel_format(conn) -> dg.AssetCheckResult:
    bad = conn.execute(
        "SELECT channel FROM risk_channels WHERE NOT regexp_full_match(channel, ?) LIMIT 5", [CHANNEL_PATTERN]
    ).fetchall()
    total = _count(conn, "SELECT count(*) FROM risk_channels WHERE NOT regexp_full_match(channel, ?)", [CHANNEL_PATTERN])
    return dg.AssetCheckResult(check_name="risk_channels_format", passed=total == 0,
                               metadata={"bad_channels": total, "examples": ", ".join(r[0] for r in bad)},
                               asset_key="risk_channels")


def partition_matches_api(conn, user_id: str, raw_path: str, items: int) -> dg.AssetCheckResult:
    """This organisation's visible risks equal the distinct ids of the API answer, counted anew."""
    expected = _count(
        conn,
        "SELECT count(DISTINCT coalesce(json->>'id', json->>'Id', json->>'ID')) FROM read_json_objects(?, format = 'array')",
        [raw_path],
    ) if items else 0
    actual = _count(conn, "SELECT count(*) FROM risk_visibility WHERE user_id = ?", [user_id])
    return dg.AssetCheckResult(check_name="risk_visibility_matches_api", passed=expected == actual,
                               metadata={"api_distinct_ids": expected, "warehouse_rows": actual},
                               asset_key="risk_visibility")


def signed_total(conn) -> dg.AssetCheckResult:
    over = conn.execute(
        """SELECT root_id, sum(signed_pct) FROM market_lines WHERE set_type = 'signed'
           GROUP BY 1 HAVING sum(signed_pct) > 100 LIMIT 5"""
    ).fetchall()
    return dg.AssetCheckResult(check_name="market_lines_signed_total", passed=not over, asset_key="market_lines",
                               metadata={"roots_over_100": len(over), "examples": str(over)})
