"""Everything the project defines for Dagster, bound to the resources it is given."""

from __future__ import annotations

import dagster as dg

from pipelines.defs import alerts, freshness
from pipelines.defs.assets.details import detail_tables, raw_risk_details
from pipelines.defs.assets.marts import marts
from pipelines.defs.assets.mireport import mi_report_tables, raw_mi_report
from pipelines.defs.assets.reference import raw_corporate, reference_tables
from pipelines.defs.assets.risks import raw_risks, risk_tables
from pipelines.defs.automation import (
    build_marts,
    daily_marts,
    daily_mi_report,
    daily_reference,
    daily_sync,
    mi_report_and_marts,
    mi_report_job,
    organisations_sensor,
    reference_data,
    sync_organisation,
)


def build(resources: dict[str, dg.ConfigurableResource]) -> dg.Definitions:
    """Everything the project defines, bound to ``resources`` (``whitespace`` and ``warehouse``)."""
    fresh_checks, fresh_sensor = freshness.build()
    return dg.Definitions(
        assets=[raw_corporate, reference_tables, raw_risks, risk_tables, raw_risk_details, detail_tables,
                raw_mi_report, mi_report_tables, marts],
        asset_checks=fresh_checks,
        jobs=[sync_organisation, reference_data, mi_report_job, build_marts, mi_report_and_marts],
        schedules=[daily_sync, daily_reference, daily_mi_report, daily_marts],
        sensors=[organisations_sensor, fresh_sensor, alerts.alert_on_run_failure, alerts.alert_on_checks],
        resources=resources,
        # A run's steps in the run's own process, as `whitespace-etl sync` runs them: Dagster's default
        # starts a process per step (1.5-4 s each here), and a run's steps are mostly a chain anyway.
        executor=dg.in_process_executor,
    )
