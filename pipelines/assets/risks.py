"""Risk assets, one dynamic partition per organisation (MU id) the login acts for."""

import dataclasses
import datetime as dt
from pathlib import Path

import dagster as dg

from pipelines import checks
from pipelines.metadata import preview, table_specs
from pipelines.resources import WarehouseResource, WhitespaceResource
from pipelines.warehouse import db, raw
from pipelines.warehouse import risks as risk_loader

organisations_partitions = dg.DynamicPartitionsDefinition(name="organisations")
WAREHOUSE_POOL = "duckdb_warehouse"
"""DuckDB has one writer: every asset that writes the warehouse is in this pool (limit 1)."""


class LandedConfig(dg.Config):
    reuse_sha256: str = ""
    """Set by ``whitespace-etl sync``: its change check landed this answer moments ago, with this
    SHA-256, so the run records that one instead of fetching it again. Empty: fetch (the default)."""


def reusable(raw_dir: Path, user_id: str, endpoint: str, sha256: str) -> raw.Landed | None:
    """The newest landed answer, if it is the one with ``sha256``. None otherwise (not asked for, or
    another sync has landed a newer answer since): the run then fetches the answer itself."""
    if not sha256:
        return None
    landed = raw.latest(raw_dir, endpoint).get(user_id)
    return landed if landed is not None and landed.sha256 == sha256 and landed.path.exists() else None


@dg.asset(partitions_def=organisations_partitions, group_name="extract", kinds={"whitespace", "json"})
def raw_risks(
    context: dg.AssetExecutionContext, config: LandedConfig, whitespace: WhitespaceResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """One organisation's ``GET /api/risks`` answer, landed on disk byte for byte with its hash, so
    the warehouse can be rebuilt without calling the API again."""
    user_id = context.partition_key
    raw_dir = warehouse.raw_path()
    with whitespace.client() as client:
        bound = client.for_user(user_id)
        company_id = str(bound.my_details().get("companyId", ""))
        landed = reusable(raw_dir, user_id, risk_loader.ENDPOINT, config.reuse_sha256)
        if landed is None:
            dest = raw.landing_path(raw_dir, user_id, risk_loader.ENDPOINT, dt.datetime.now(dt.UTC))
            landed = raw.record(bound.download_risks(dest), raw_dir, user_id, risk_loader.ENDPOINT, company_id)
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
    check_specs=[
        dg.AssetCheckSpec("risks_unique_key", asset="risks", description="risk_id is unique"),
        dg.AssetCheckSpec("risks_root_id_not_null", asset="risks", description="every risk has a root id"),
        dg.AssetCheckSpec("risk_channels_unique_key", asset="risk_channels", description="(risk_id, position) is unique"),
        dg.AssetCheckSpec("risk_channels_has_parent", asset="risk_channels", description="every channel row has its risk"),
        dg.AssetCheckSpec("risk_channels_format", asset="risk_channels", description="channels look like company_TEAM"),
        dg.AssetCheckSpec("risk_visibility_has_parent", asset="risk_visibility", description="every visibility row has its risk"),
        dg.AssetCheckSpec("risk_visibility_matches_api", asset="risk_visibility",
                          description="the organisation's rows equal the distinct ids the API returned"),
    ],
    partitions_def=organisations_partitions,
    pool=WAREHOUSE_POOL,
    name="risk_tables",
)
def risk_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Normalises the organisation's latest landed risk list into ``risks``, ``risk_channels`` and
    ``risk_visibility``, replacing exactly that organisation's rows in one transaction."""
    user_id = context.partition_key
    raw_dir = warehouse.raw_path()
    landed = raw.latest(raw_dir, risk_loader.ENDPOINT).get(user_id)
    if landed is None:
        raise dg.Failure(f"No landed /api/risks answer for {user_id} in {raw_dir}: materialise raw_risks first.")
    with db.session(warehouse.db_path()) as conn:
        result = risk_loader.load(conn, landed, landed.relative_to(raw_dir))
        totals = {t: conn.execute(f"SELECT count(*) FROM {db.ident(t)}").fetchone()[0] for t in RISK_TABLES}  # noqa: S608
        check_results = [
            checks.unique_key(conn, "risks", "risk_id"),
            checks.no_null_root_ids(conn),
            checks.unique_key(conn, "risk_channels", "risk_id, position"),
            checks.has_parent(conn, "risk_channels", "risks", "risk_id"),
            checks.channel_format(conn),
            checks.has_parent(conn, "risk_visibility", "risks", "risk_id"),
            checks.partition_matches_api(conn, user_id, str(landed.path), landed.items),
        ]
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
