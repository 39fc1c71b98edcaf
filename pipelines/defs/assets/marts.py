"""Marts for BI: rebuilt from every organisation's tables after a sync, checked against them,
and exported to Parquet."""

import dagster as dg

from models import MART_TABLES
from pipelines.defs import checks
from pipelines.defs.assets.details import detail_tables
from pipelines.defs.assets.mireport import mi_report_tables
from pipelines.defs.assets.reference import reference_tables
from pipelines.defs.assets.risks import risk_tables
from pipelines.defs.metadata import preview, table_specs
from pipelines.defs.partitions import WAREHOUSE_POOL
from pipelines.defs.resources import WarehouseResource
from pipelines.warehouse import db
from pipelines.warehouse import marts as mart_builder

BASE_TABLES = [*risk_tables.keys, *detail_tables.keys, *reference_tables.keys, *mi_report_tables.keys]


class MartsConfig(dg.Config):
    open_item_days: int = 0
    """Open items are placements in a quotation or firm-order state for longer than this many days;
    0 means ``WHITESPACE_OPEN_ITEM_DAYS`` or 30."""


@dg.multi_asset(
    specs=table_specs(MART_TABLES, BASE_TABLES, group_name="marts"),
    check_specs=checks.specs(checks.MARTS),
    pool=WAREHOUSE_POOL,
    name="marts",
)
def marts(context: dg.AssetExecutionContext, config: MartsConfig, warehouse: WarehouseResource):
    """Rebuilds the marts in one transaction (a reader sees the old or the new, never a mix), ties
    each back to the base tables, and writes ``<warehouse dir>/marts/<mart>.parquet``."""
    days = config.open_item_days or warehouse.settings().open_item_days
    with warehouse.session(scope=mart_builder.SCOPE) as conn:
        built = mart_builder.build(conn, days)
        results = checks.evaluate(checks.MARTS, conn, open_item_days=days)
        files = mart_builder.export_parquet(conn, warehouse.marts_path(), built)
        mart_builder.record(conn, built)
        previews = {t: conn.execute(f"SELECT * FROM {db.ident(t)} LIMIT 5").fetchall() for t in MART_TABLES}  # noqa: S608
        columns = {t: db.existing_columns(conn, t) for t in MART_TABLES}
    context.log.info("Marts built as of %s: %s", built.as_of, built.counts)
    for table in MART_TABLES:
        yield dg.MaterializeResult(asset_key=table, metadata={
            "dagster/row_count": built.counts[table],
            "as_of": str(built.as_of),
            "parquet": dg.MetadataValue.path(str(files[table])),
            "preview": preview([dict(zip(columns[table], row, strict=True)) for row in previews[table]]),
            **({"open_item_days": days} if table == "mart_open_items" else {}),
        })
    yield from results
