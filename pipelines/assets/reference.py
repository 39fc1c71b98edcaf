"""Reference data: every company, team and user on the platform (``/api/shared/corporate``)."""

import dagster as dg

from pipelines import checks
from pipelines.assets.risks import WAREHOUSE_POOL, LandedConfig, reusable
from pipelines.metadata import table_specs
from pipelines.resources import WarehouseResource, WhitespaceResource
from pipelines.warehouse import db, raw
from pipelines.warehouse import reference as reference_loader


@dg.asset(group_name="extract", kinds={"whitespace", "json"})
def raw_corporate(config: LandedConfig, whitespace: WhitespaceResource, warehouse: WarehouseResource
                  ) -> dg.MaterializeResult:
    """The ``GET /api/shared/corporate`` answer (companies, teams, members), landed on disk as received."""
    landed = reusable(warehouse.raw_path(), "", reference_loader.ENDPOINT, config.reuse_sha256)
    fetched_by = "the sync's change check"
    if landed is None:
        with whitespace.client() as client:
            payload = client.corporate()
        landed = raw.land_json(warehouse.raw_path(), "", reference_loader.ENDPOINT, payload)
        fetched_by = "this run"
    return dg.MaterializeResult(metadata={
        "companies": landed.items, "bytes": landed.bytes, "sha256": landed.sha256, "fetched_by": fetched_by,
    })


REFERENCE_TABLES = ("organisations", "teams", "users", "users__teams")


@dg.multi_asset(
    specs=table_specs(REFERENCE_TABLES, [raw_corporate]),
    check_specs=[
        dg.AssetCheckSpec("organisations_unique_key", asset="organisations", description="company_id is unique"),
        dg.AssetCheckSpec("teams_has_parent", asset="teams", description="every team belongs to a known organisation"),
        dg.AssetCheckSpec("users_unique_key", asset="users", description="user_id (MU id) is unique"),
        dg.AssetCheckSpec("users__teams_has_parent", asset="users__teams", description="every row has its user"),
    ],
    pool=WAREHOUSE_POOL,
    name="reference_tables",
)
def reference_tables(warehouse: WarehouseResource):
    """Replaces organisations, teams, users and their team memberships with the latest corporate list."""
    raw_dir = warehouse.raw_path()
    landed = raw.latest(raw_dir, reference_loader.ENDPOINT).get("")
    if landed is None:
        raise dg.Failure(f"No landed /api/shared/corporate answer in {raw_dir}: materialise raw_corporate first.")
    with db.session(warehouse.db_path()) as conn:
        counts = reference_loader.load(conn, landed, landed.relative_to(raw_dir))
        results = [
            checks.unique_key(conn, "organisations", "company_id"),
            checks.has_parent(conn, "teams", "organisations", "company_id"),
            checks.unique_key(conn, "users", "user_id"),
            checks.has_parent(conn, "users__teams", "users", "user_id"),
        ]
    for table in REFERENCE_TABLES:
        yield dg.MaterializeResult(asset_key=table, metadata={"dagster/row_count": counts[table]})
    yield from results
