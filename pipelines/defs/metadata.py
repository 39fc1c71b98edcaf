"""What the Dagster UI shows about a table: its documented schema, counts and a small preview."""

from __future__ import annotations

import functools
from typing import Any

import dagster as dg
import sqlalchemy as sa

from models import metadata as models_metadata


def column_schema(table: str) -> dg.TableSchema:
    """The table's columns with their types and comments, straight from ``models``."""
    t = models_metadata.tables[table]
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, str(c.type.compile(dialect=_dialect())), description=c.comment) for c in t.columns]
    )


@functools.cache
def _dialect() -> sa.engine.Dialect:
    """One dialect for every column: making one asks DuckDB for its reserved words (about 4 ms), and the
    definitions name some 300 columns, so a new one each time cost every process loading them a second."""
    import duckdb_engine

    return duckdb_engine.Dialect()


def table_specs(tables, deps: list, partitions_def=None, group_name: str = "warehouse") -> list[dg.AssetSpec]:
    """Asset specs for warehouse tables: description and column schema straight from ``models``."""
    return [
        dg.AssetSpec(t, deps=deps, description=table_description(t), group_name=group_name,
                     kinds={"duckdb", "table"}, partitions_def=partitions_def,
                     metadata={"dagster/column_schema": column_schema(t)})
        for t in tables
    ]


def table_description(table: str) -> str:
    return models_metadata.tables[table].comment or ""


def preview(rows: list[dict[str, Any]]) -> dg.MetadataValue:
    """A markdown table of a few rows (values shortened)."""
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [str(r[c]).replace("|", "\\|")[:60] for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def add_for_partition(context: dg.AssetExecutionContext, keys: list[str], key: str, metadata: dict[str, Any],
                      asset_key: str | None = None) -> None:
    """Metadata of partition ``key``'s materialization in a run of partitions ``keys``. A run of one
    partition does not name it: Dagster checks a named partition against the run's range with a query
    of its instance each time (about 10 ms on SQLite), and the metadata goes to that one partition anyway."""
    context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key if len(keys) > 1 else None)
