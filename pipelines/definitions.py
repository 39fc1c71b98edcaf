"""The Dagster code location: everything the project defines, in one place."""

import dagster as dg

from pipelines.assets.details import detail_tables, raw_risk_details
from pipelines.assets.marts import marts
from pipelines.assets.reference import raw_corporate, reference_tables
from pipelines.assets.risks import raw_risks, risk_tables
from pipelines.automation import (
    build_marts,
    daily_marts,
    daily_reference,
    daily_sync,
    organisations_sensor,
    reference_data,
    sync_organisation,
)
from pipelines.resources import WarehouseResource, WhitespaceResource

defs = dg.Definitions(
    assets=[raw_corporate, reference_tables, raw_risks, risk_tables, raw_risk_details, detail_tables, marts],
    jobs=[sync_organisation, reference_data, build_marts],
    schedules=[daily_sync, daily_reference, daily_marts],
    sensors=[organisations_sensor],
    resources={"whitespace": WhitespaceResource(), "warehouse": WarehouseResource()},
)
