"""The MI report: every organisation's changed rows landed, then loaded in one transaction."""

import dagster as dg

from pipelines.defs import checks
from pipelines.defs.metadata import table_specs
from pipelines.defs.partitions import WAREHOUSE_POOL
from pipelines.defs.resources import WarehouseResource, WhitespaceResource
from pipelines.extract import mireport
from pipelines.warehouse import mireport as mi_loader


@dg.asset(group_name="extract", kinds={"whitespace", "json"})
def raw_mi_report(context: dg.AssetExecutionContext, whitespace: WhitespaceResource,
                  warehouse: WarehouseResource) -> dg.MaterializeResult:
    """``POST $ROOT/mireport/prepare`` for every organisation of every login, each answer landed durably
    before any ``/mireport/fetch`` moves the platform's "changed since" cursor on. With several logins, one
    whose token is rejected is logged as an error and named in ``logins_failed`` (its partitions fail with
    the same message), and the others' rows are landed and loaded."""
    def extract(client, _login: str) -> mireport.MiExtract:
        user_ids = [o.user_id for o in client.discover_organisations()]
        return mireport.extract(client, user_ids, warehouse.raw_path(), log=context.log.info)

    extracted, failed = whitespace.each_login(extract, context.log.error)
    rows = {mu: n for one in extracted.values() for mu, n in one.rows.items()}
    return dg.MaterializeResult(metadata={
        "rows": sum(rows.values()),
        "rows_per_organisation": dg.MetadataValue.json(rows),
        "files": sum(len(one.landed) for one in extracted.values()),
        "requests": sum(one.requests for one in extracted.values()),
        **({"logins_failed": dg.MetadataValue.json(failed)} if failed else {}),
    })


@dg.multi_asset(
    specs=table_specs(mi_loader.MI_TABLES, [raw_mi_report, "risks"]),
    check_specs=checks.specs(checks.MI_REPORT),
    pool=WAREHOUSE_POOL,
    name="mi_report_tables",
)
def mi_report_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Applies every landed MI answer not yet in the warehouse: premium, brokerage, limit and period
    typed exactly, and each carrier's written and signed line with its milestones."""
    with warehouse.session(scope=mi_loader.scope(warehouse.raw_path())) as conn:
        result = mi_loader.load_pending(conn, warehouse.raw_path())
        results = checks.evaluate(checks.MI_REPORT, conn, arrived_twice=result.arrived_twice)
    context.log.info("MI report: %d rows from %d files", result.rows, result.files)
    if result.set_aside:
        context.log.warning("%d MI report row(s) set aside, not loaded (in quarantine): %s", len(result.set_aside),
                            "; ".join(f"{a.document_id or 'row'} #{a.position}: {a.reason}" for a in result.set_aside[:5]))
    for table in mi_loader.MI_TABLES:
        yield dg.MaterializeResult(asset_key=table, metadata={
            "dagster/row_count": result.counts[table],
            **({"files_loaded": result.files, "rows_applied": result.rows, "rows_kept_newer": result.older,
                "rows_set_aside": len(result.set_aside)}
               if table == "mi_report" else {}),
        })
    yield from results
