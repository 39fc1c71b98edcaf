"""Contracts and market lines: fetched incrementally per organisation, loaded in one transaction."""

import dagster as dg

from pipelines.client import endpoints
from pipelines.defs import checks
from pipelines.defs.assets.risks import raw_risks
from pipelines.defs.metadata import add_for_partition, table_specs
from pipelines.defs.partitions import (
    SINGLE_RUN,
    WAREHOUSE_POOL,
    DetailsConfig,
    by_login,
    organisations_partitions,
    split_key,
)
from pipelines.defs.resources import WarehouseResource, WhitespaceResource
from pipelines.extract import details
from pipelines.landing import raw
from pipelines.warehouse import details as detail_loader


@dg.asset(partitions_def=organisations_partitions, group_name="extract", kinds={"whitespace", "json"},
          deps=[raw_risks], backfill_policy=SINGLE_RUN)
def raw_risk_details(
    context: dg.AssetExecutionContext, config: DetailsConfig, whitespace: WhitespaceResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Each changed root's contract (``GET /api/risks/{riskID}``) and line sets (``GET /api/lines/{rootID}/
    combinedSets``), landed as received. Only roots whose document revisions changed are fetched."""
    raw_dir = warehouse.raw_path()
    keys = list(context.partition_keys)
    reconcile_every = warehouse.settings().reconcile_every
    with whitespace.clients() as client:
        for login, group in by_login(keys).items():
            bound_login = client(login)

            def fetch(key: str, bound_login=bound_login) -> details.Fetched:
                user_id = split_key(key)[1]
                listing = raw.require_latest(raw_dir, endpoints.RISKS, user_id)
                return details.fetch(bound_login.for_user(user_id), raw_dir, listing,
                                     log=lambda message, u=user_id: context.log.info(f"{u}: {message}"),
                                     full=config.full, reconcile_every=reconcile_every)

            # The login's organisations at once: their requests share the login's max_concurrency slots,
            # so one organisation's few changed roots do not wait for the next one's feed to be read.
            for key, fetched in bound_login.each(fetch, group):
                _fetched(context, keys, key, fetched)
    return dg.MaterializeResult()


def _fetched(context: dg.AssetExecutionContext, keys: list[str], key: str, fetched: details.Fetched) -> None:
    if fetched.failed:
        context.log.warning("%d roots of %s failed and will be fetched again next run: %s", len(fetched.failed),
                            split_key(key)[1], dict(list(fetched.failed.items())[:5]))
    add_for_partition(context, keys, key, {
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
    check_specs=checks.specs(checks.DETAILS),
    partitions_def=organisations_partitions,
    pool=WAREHOUSE_POOL,
    backfill_policy=SINGLE_RUN,
    name="detail_tables",
)
def detail_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Applies every landed detail file not yet in the warehouse: contracts, line items and their
    placeholders, market lines with exact decimal shares, and facility links (one transaction per
    organisation)."""
    results: dict[str, list[dg.AssetCheckResult]] = {}
    keys = list(context.partition_keys)
    with warehouse.sessions() as session:
        for key in keys:
            _, user_id = split_key(key)
            with session(detail_loader.scope(warehouse.raw_path(), user_id)) as conn:
                result = detail_loader.load_pending(conn, warehouse.raw_path(), user_id)
                results[key] = checks.evaluate(checks.DETAILS, conn, user_id=user_id, drift=result.drift)
            add_for_partition(context, keys, key, asset_key="contracts", metadata={
                "dagster/row_count": result.counts["contracts"], "roots_loaded": result.roots,
                "files_loaded": result.files, "roots_failed": len(result.failed), "roots_kept_newer": result.older,
                "schema_drift": dg.MetadataValue.json(result.drift), "roots_removed": result.removed_roots})
    for table in detail_loader.DETAIL_TABLES:
        if table != "contracts":  # the table's rows once the run's last organisation loaded, on each partition
            context.add_asset_metadata({"dagster/row_count": result.counts[table]}, asset_key=table)
        yield dg.MaterializeResult(asset_key=table)
    yield from checks.combine(results)
