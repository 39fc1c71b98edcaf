"""Contracts and market lines: fetched incrementally per organisation, loaded in one transaction."""

import dagster as dg

from pipelines import checks, details
from pipelines.assets.risks import WAREHOUSE_POOL, organisations_partitions, raw_risks
from pipelines.metadata import table_specs
from pipelines.resources import WarehouseResource, WhitespaceResource
from pipelines.warehouse import db, raw
from pipelines.warehouse import details as detail_loader
from pipelines.warehouse import risks as risk_loader


@dg.asset(partitions_def=organisations_partitions, group_name="extract", kinds={"whitespace", "json"},
          deps=[raw_risks])
def raw_risk_details(
    context: dg.AssetExecutionContext, whitespace: WhitespaceResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Each changed root's contract (``GET /api/risks/{riskID}``) and line sets (``GET /api/lines/{rootID}/
    combinedSets``), landed as received. Only roots whose document revisions changed are fetched."""
    user_id = context.partition_key
    raw_dir = warehouse.raw_path()
    listing = raw.latest(raw_dir, risk_loader.ENDPOINT).get(user_id)
    if listing is None:
        raise dg.Failure(f"No landed /api/risks answer for {user_id}: materialise raw_risks first.")
    with whitespace.client() as client:
        fetched = details.fetch(client.for_user(user_id), raw_dir, listing, log=context.log.info)
    if fetched.failed:
        context.log.warning("%d roots failed and will be fetched again next run: %s", len(fetched.failed),
                            dict(list(fetched.failed.items())[:5]))
    return dg.MaterializeResult(metadata={
        "roots_fetched": fetched.fetched,
        "roots_unchanged": fetched.plan.unchanged,
        "roots_gone": len(fetched.plan.gone),
        "roots_failed": len(fetched.failed),
        "failed_roots": dg.MetadataValue.json(dict(list(fetched.failed.items())[:50])),
        "requests": fetched.requests,
        "path": str(fetched.path) if fetched.path else "nothing changed",
    })


@dg.multi_asset(
    specs=table_specs(detail_loader.DETAIL_TABLES, [raw_risk_details, "risks"], organisations_partitions),
    check_specs=[
        dg.AssetCheckSpec("contracts_fetched", asset="contracts", blocking=False,
                          description="every root's detail calls succeeded (failures are retried next run)"),
        dg.AssetCheckSpec("contracts_unique_key", asset="contracts", description="root_id is unique"),
        dg.AssetCheckSpec("contract_line_items_has_parent", asset="contract_line_items",
                          description="every line item has its contract"),
        dg.AssetCheckSpec("market_lines_has_parent", asset="market_lines",
                          description="every market line's root is a known risk"),
        dg.AssetCheckSpec("market_lines_signed_total", asset="market_lines",
                          description="signed lines of a root total at most 100%"),
    ],
    partitions_def=organisations_partitions,
    pool=WAREHOUSE_POOL,
    name="detail_tables",
)
def detail_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Applies every landed detail file not yet in the warehouse: contracts, line items and their
    placeholders, market lines with exact decimal shares, and facility links."""
    user_id = context.partition_key
    with db.session(warehouse.db_path()) as conn:
        result = detail_loader.load(conn, warehouse.raw_path(), user_id)
        failures = conn.execute("SELECT root_id, error FROM detail_failures WHERE user_id = ?", [user_id]).fetchall()
        results = [
            dg.AssetCheckResult(check_name="contracts_fetched", asset_key="contracts", passed=not failures,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"failed_roots": len(failures),
                                          "examples": dg.MetadataValue.json(dict(failures[:10]))}),
            checks.unique_key(conn, "contracts", "root_id"),
            checks.has_parent(conn, "contract_line_items", "contracts", "root_id"),
            checks.has_parent(conn, "market_lines", "risks", "root_id"),
            checks.signed_total(conn),
        ]
    for table in detail_loader.DETAIL_TABLES:
        yield dg.MaterializeResult(asset_key=table, metadata={
            "dagster/row_count": result.counts[table],
            **({"roots_loaded": result.roots, "files_loaded": result.files, "roots_failed": len(result.failed),
                "roots_removed": result.removed_roots} if table == "contracts" else {}),
        })
    yield from results



