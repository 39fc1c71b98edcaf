"""Risk assets, one dynamic partition per organisation (MU id) the login acts for."""

import dataclasses

import dagster as dg

from pipelines.client import endpoints
from pipelines.defs import checks
from pipelines.defs.metadata import preview, table_specs
from pipelines.defs.partitions import (
    WAREHOUSE_POOL,
    LandedConfig,
    RiskTablesConfig,
    organisations_partitions,
    split_key,
)
from pipelines.defs.resources import WarehouseResource, WhitespaceResource
from pipelines.landing import raw
from pipelines.warehouse import db
from pipelines.warehouse import risks as risk_loader


@dg.asset(partitions_def=organisations_partitions, group_name="extract", kinds={"whitespace", "json"})
def raw_risks(
    context: dg.AssetExecutionContext, config: LandedConfig, whitespace: WhitespaceResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """One organisation's ``GET /api/risks`` answer, landed on disk byte for byte with its hash, so
    the warehouse can be rebuilt without calling the API again."""
    login, user_id = split_key(context.partition_key)
    raw_dir = warehouse.raw_path()
    with whitespace.client(login) as client:
        bound = client.for_user(user_id)
        company_id = str(bound.my_details().get("companyId", ""))
        landed = raw.reusable(raw_dir, user_id, endpoints.RISKS, config.reuse_sha256)
        if landed is None:
            download = raw.download_risk_list(bound, raw_dir, user_id)
            landed = raw.record(download, raw_dir, user_id, endpoints.RISKS, company_id)
            fetched_by = "this run"
        else:
            landed = dataclasses.replace(landed, company_id=company_id)
            raw.write_manifest(landed)
            fetched_by = "the sync's change check"
    context.log.info("Landed %d risks (%d bytes) for %s (%s), fetched by %s", landed.items, landed.bytes, user_id,
                     company_id, fetched_by)
    return dg.MaterializeResult(
        metadata={
            "items": landed.items,
            "bytes": landed.bytes,
            "sha256": landed.sha256,
            "company_id": company_id,
            "fetched_by": fetched_by,
            "path": dg.MetadataValue.path(str(landed.path)),
        }
    )


RISK_TABLES = ("risks", "risk_channels", "risk_visibility", "risk_history")


@dg.multi_asset(
    specs=table_specs(RISK_TABLES, [raw_risks], organisations_partitions),
    check_specs=checks.specs(checks.RISKS),
    partitions_def=organisations_partitions,
    pool=WAREHOUSE_POOL,
    name="risk_tables",
)
def risk_tables(context: dg.AssetExecutionContext, config: RiskTablesConfig, warehouse: WarehouseResource):
    """Normalises the organisation's latest landed risk list into ``risks``, ``risk_channels`` and
    ``risk_visibility``, replacing exactly that organisation's rows in one transaction. A list that
    drops more of the organisation's risks than allowed is refused, unless accepted."""
    _, user_id = split_key(context.partition_key)
    raw_dir = warehouse.raw_path()
    landed = raw.require_latest(raw_dir, endpoints.RISKS, user_id)
    before = raw.landed_before(raw_dir, endpoints.RISKS, landed)
    accepted = config.accept_shrink or (before is not None and before.sha256 == landed.sha256)
    with warehouse.session(scope=risk_loader.scope(landed)) as conn:
        result = risk_loader.load_list(conn, landed, landed.relative_to(raw_dir),
                                       max_shrink=1.0 if accepted else warehouse.settings().max_shrink)
        totals = {t: db.row_count(conn, t) for t in RISK_TABLES}
        check_results = checks.evaluate(checks.RISKS, conn, user_id=user_id, landed=landed, drift=result.drift)
    drift = result.drift
    if drift:
        context.log.warning("Schema drift in /api/risks for %s: %s", user_id, drift)
    yield dg.MaterializeResult(
        asset_key="risks",
        metadata={
            "dagster/row_count": totals["risks"],
            "partition_rows": result.distinct_risks,
            "api_items": result.api_items,
            "added": result.added,
            "changed": result.changed,
            "gone": result.gone,
            "unchanged": result.unchanged,
            "duplicates_in_answer": result.duplicates,
            "skipped_without_id": result.skipped_without_id,
            "removed_from_warehouse": result.removed_from_warehouse,
            "schema_drift": dg.MetadataValue.json(drift),
            "child_tables": ", ".join(result.child_tables) or "none",
            "preview": preview(result.preview),
        },
    )
    yield dg.MaterializeResult(
        asset_key="risk_channels",
        metadata={"dagster/row_count": totals["risk_channels"], "partition_rows": result.channels},
    )
    yield dg.MaterializeResult(
        asset_key="risk_visibility",
        metadata={"dagster/row_count": totals["risk_visibility"], "partition_rows": result.distinct_risks,
                  "added": result.added, "gone": result.gone},
    )
    yield dg.MaterializeResult(
        asset_key="risk_history",
        metadata={"dagster/row_count": totals["risk_history"], "new_revisions": result.added + result.changed},
    )
    yield from check_results
