"""Risk assets, one dynamic partition per organisation (MU id) the login acts for."""

import dataclasses

import dagster as dg

from pipelines.client import endpoints
from pipelines.defs import checks
from pipelines.defs.metadata import add_for_partition, preview, table_specs
from pipelines.defs.partitions import (
    SINGLE_RUN,
    WAREHOUSE_POOL,
    LandedConfig,
    RiskTablesConfig,
    by_login,
    organisations_partitions,
    split_key,
)
from pipelines.defs.resources import WarehouseResource, WhitespaceResource
from pipelines.landing import raw
from pipelines.warehouse import db, quality
from pipelines.warehouse import risks as risk_loader


@dg.asset(partitions_def=organisations_partitions, group_name="extract", kinds={"whitespace", "json"},
          backfill_policy=SINGLE_RUN)
def raw_risks(
    context: dg.AssetExecutionContext, config: LandedConfig, whitespace: WhitespaceResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """One organisation's ``GET /api/risks`` answer, landed on disk byte for byte with its hash, so
    the warehouse can be rebuilt without calling the API again. A run of several organisations (a
    backfill, a sync) lands each in turn."""
    raw_dir = warehouse.raw_path()
    keys = list(context.partition_keys)
    with whitespace.clients() as client:
        for login, group in by_login(keys).items():
            bound_login = client(login)

            def land(key: str, bound_login=bound_login) -> tuple[raw.Landed, str, str]:
                user_id = split_key(key)[1]
                bound = bound_login.for_user(user_id)
                company_id = str(bound.my_details().get("companyId", ""))
                landed = raw.reusable(raw_dir, user_id, endpoints.RISKS, config.sha256_for(key, keys))
                if landed is None:
                    download = raw.download_risk_list(bound, raw_dir, user_id)
                    return raw.record(download, raw_dir, user_id, endpoints.RISKS, company_id), company_id, "this run"
                landed = dataclasses.replace(landed, company_id=company_id)
                raw.write_manifest(landed)
                return landed, company_id, "the sync's change check"

            # The login's organisations at once (its client's concurrency), each logged in order.
            for key, result in bound_login.each(land, group):
                _landed(context, keys, key, *result)
    return dg.MaterializeResult()


def _landed(context: dg.AssetExecutionContext, keys: list[str], key: str, landed: raw.Landed, company_id: str,
            fetched_by: str) -> None:
    user_id = split_key(key)[1]
    context.log.info("Landed %d risks (%d bytes) for %s (%s), fetched by %s", landed.items, landed.bytes, user_id,
                     company_id, fetched_by)
    add_for_partition(context, keys, key, {
        "items": landed.items,
        "bytes": landed.bytes,
        "sha256": landed.sha256,
        "company_id": company_id,
        "fetched_by": fetched_by,
        "path": dg.MetadataValue.path(str(landed.path)),
    })


RISK_TABLES = ("risks", "risk_channels", "risk_visibility", "risk_history")


@dg.multi_asset(
    specs=table_specs(RISK_TABLES, [raw_risks], organisations_partitions),
    check_specs=checks.specs(checks.RISKS),
    partitions_def=organisations_partitions,
    pool=WAREHOUSE_POOL,
    backfill_policy=SINGLE_RUN,
    name="risk_tables",
)
def risk_tables(context: dg.AssetExecutionContext, config: RiskTablesConfig, warehouse: WarehouseResource):
    """Normalises the organisation's latest landed risk list into ``risks``, ``risk_channels`` and
    ``risk_visibility``, replacing exactly that organisation's rows in one transaction (a run of several
    organisations: one transaction each). A list that drops more of the organisation's risks than
    allowed is refused, unless accepted."""
    raw_dir = warehouse.raw_path()
    results: dict[str, list[dg.AssetCheckResult]] = {}
    keys = list(context.partition_keys)
    with warehouse.sessions() as session:
        for key in keys:
            _, user_id = split_key(key)
            landed = raw.require_latest(raw_dir, endpoints.RISKS, user_id)
            before = raw.landed_before(raw_dir, endpoints.RISKS, landed)
            accepted = config.accept_shrink or (before is not None and before.sha256 == landed.sha256)
            with (session(risk_loader.scope(landed)) as conn,  # the answer's ids counted anew beside the load
                  db.beside(conn, quality.api_distinct_ids, str(landed.path), landed.items,
                            [a.position for a in landed.set_aside], landed.read_option) as api_ids):
                result = risk_loader.load_list(conn, landed, landed.relative_to(raw_dir),
                                               max_shrink=1.0 if accepted else warehouse.settings().max_shrink)
                totals = {t: db.row_count(conn, t) for t in RISK_TABLES}
                results[key] = checks.evaluate(checks.RISKS, conn, user_id=user_id, landed=landed, drift=result.drift,
                                               api_ids=api_ids)
            _record(context, keys, key, user_id, result, totals)
    for table in RISK_TABLES:
        yield dg.MaterializeResult(asset_key=table)
    yield from checks.combine(results)


def _record(context: dg.AssetExecutionContext, keys: list[str], key: str, user_id: str, result,
            totals: dict[str, int]) -> None:
    """One organisation's load, as the metadata of its partition of each table."""
    drift = result.drift
    if result.set_aside:
        context.log.warning("%d element(s) of the risk list of %s set aside, not loaded (in quarantine): %s", len(
            result.set_aside), user_id, "; ".join(f"#{a.position} {a.reason}" for a in result.set_aside[:5]))
    if drift:
        context.log.warning("Schema drift in /api/risks for %s: %s", user_id, drift)
    metadata = {
        "risks": {
            "dagster/row_count": totals["risks"],
            "partition_rows": result.distinct_risks,
            "api_items": result.api_items,
            "added": result.added,
            "changed": result.changed,
            "gone": result.gone,
            "unchanged": result.unchanged,
            "duplicates_in_answer": result.duplicates,
            "skipped_without_id": result.skipped_without_id,
            "set_aside": len(result.set_aside),
            "documents_parsed": result.parsed,
            "load": "delta" if result.delta else "whole",
            "removed_from_warehouse": result.removed_from_warehouse,
            "schema_drift": dg.MetadataValue.json(drift),
            "child_tables": ", ".join(result.child_tables) or "none",
            "preview": preview(result.preview),
        },
        "risk_channels": {"dagster/row_count": totals["risk_channels"], "partition_rows": result.channels},
        "risk_visibility": {"dagster/row_count": totals["risk_visibility"], "partition_rows": result.distinct_risks,
                            "added": result.added, "gone": result.gone},
        "risk_history": {"dagster/row_count": totals["risk_history"], "new_revisions": result.added + result.changed},
    }
    for table, values in metadata.items():
        add_for_partition(context, keys, key, values, asset_key=table)
