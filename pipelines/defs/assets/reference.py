"""Reference data: every company, team and user on the platform (``/api/shared/corporate``)."""

import dagster as dg

from pipelines.client import endpoints
from pipelines.defs import checks
from pipelines.defs.metadata import table_specs
from pipelines.defs.partitions import WAREHOUSE_POOL, LandedConfig
from pipelines.defs.resources import WarehouseResource, WhitespaceResource
from pipelines.landing import raw
from pipelines.warehouse import reference as reference_loader


@dg.asset(group_name="extract", kinds={"whitespace", "json"})
def raw_corporate(config: LandedConfig, whitespace: WhitespaceResource, warehouse: WarehouseResource
                  ) -> dg.MaterializeResult:
    """The ``GET /api/shared/corporate`` answer (companies, teams, members), landed on disk as received."""
    landed = raw.reusable(warehouse.raw_path(), "", endpoints.CORPORATE, config.reuse_sha256)
    fetched_by = "the sync's change check"
    if landed is None:
        with whitespace.working_client() as client:  # the same platform-wide list for every login
            download = raw.download_corporate(client, warehouse.raw_path())
        landed = raw.record(download, warehouse.raw_path(), "", endpoints.CORPORATE)
        fetched_by = "this run"
    return dg.MaterializeResult(metadata={
        "companies": landed.items, "bytes": landed.bytes, "sha256": landed.sha256, "fetched_by": fetched_by,
    })


REFERENCE_TABLES = ("organisations", "teams", "users", "users__teams")


@dg.multi_asset(
    specs=table_specs(REFERENCE_TABLES, [raw_corporate]),
    check_specs=checks.specs(checks.REFERENCE),
    pool=WAREHOUSE_POOL,
    name="reference_tables",
)
def reference_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Replaces organisations, teams, users and their team memberships with the latest corporate list."""
    raw_dir = warehouse.raw_path()
    landed = raw.require_latest(raw_dir, endpoints.CORPORATE, "")
    before = raw.landed_before(raw_dir, endpoints.CORPORATE, landed)
    accepted = before is not None and before.sha256 == landed.sha256  # the same answer twice in a row
    with warehouse.session(scope=reference_loader.SCOPE) as conn:
        counts = reference_loader.load_corporate(conn, landed, landed.relative_to(raw_dir),
                                                 max_shrink=1.0 if accepted else warehouse.settings().max_shrink)
        results = checks.evaluate(checks.REFERENCE, conn, counts=counts)
    if counts["set_aside"]:
        context.log.warning("%d compan(ies), team(s) or member(s) of the corporate list set aside, not loaded "
                            "(in quarantine)", counts["set_aside"])
    for table in REFERENCE_TABLES:
        yield dg.MaterializeResult(asset_key=table, metadata={
            "dagster/row_count": counts[table], **({"set_aside": counts["set_aside"]} if table == "organisations" else {})})
    yield from results
