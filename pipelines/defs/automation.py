"""Jobs, the organisation-discovery sensor and the daily schedule."""

import dagster as dg

from pipelines.defs.assets.details import detail_tables, raw_risk_details
from pipelines.defs.assets.marts import marts
from pipelines.defs.assets.mireport import mi_report_tables, raw_mi_report
from pipelines.defs.assets.reference import raw_corporate, reference_tables
from pipelines.defs.assets.risks import raw_risks, risk_tables
from pipelines.defs.partitions import organisations_partitions, partition_key, split_key
from pipelines.defs.plan import (
    MARTS_JOB,
    MI_AND_MARTS_JOB,
    MI_JOB,
    ORGANISATION_JOB,
    REFERENCE_JOB,
    SyncPlan,
    retire_departed,
)
from pipelines.defs.resources import WarehouseResource, WhitespaceResource
from pipelines.extract import changes
from pipelines.warehouse import state

sync_organisation = dg.define_asset_job(
    ORGANISATION_JOB,
    selection=dg.AssetSelection.assets(raw_risks, risk_tables, raw_risk_details, detail_tables),
    partitions_def=organisations_partitions,
    description="Extract and load one organisation's risks, contracts and lines (one partition = one MU id).",
)
reference_data = dg.define_asset_job(
    REFERENCE_JOB,
    selection=dg.AssetSelection.assets(raw_corporate, reference_tables),
    description="Refresh organisations, teams and users from the corporate list.",
)

mi_report_job = dg.define_asset_job(
    MI_JOB,
    selection=dg.AssetSelection.assets(raw_mi_report, mi_report_tables),
    description="Land every organisation's changed MI report rows (premium, brokerage, limits, lines), then load them.",
)

build_marts = dg.define_asset_job(
    MARTS_JOB,
    selection=dg.AssetSelection.assets(marts),
    description="Rebuild the BI marts from every organisation's tables and export them to Parquet.",
)

mi_report_and_marts = dg.define_asset_job(
    MI_AND_MARTS_JOB,
    selection=dg.AssetSelection.assets(raw_mi_report, mi_report_tables, marts),
    description="The MI report's changed rows, then the marts, in one run: what a sync starts when the MI "
                "report changed (the marts follow it; if it fails they are not built in that run).",
)


@dg.sensor(job=sync_organisation, minimum_interval_seconds=3600, default_status=dg.DefaultSensorStatus.STOPPED)
def organisations_sensor(context: dg.SensorEvaluationContext, whitespace: WhitespaceResource) -> dg.SensorResult:
    """Discovers the organisations each login acts for, adds a partition for each new one and requests
    its first sync. With several logins, one whose token is rejected is logged and the others go on."""
    discovered, _ = whitespace.each_login(_discover, context.log.error)
    found = [key for keys in discovered.values() for key in keys]
    known = set(context.instance.get_dynamic_partitions(organisations_partitions.name))
    new = [key for key in found if key not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=f"first-sync-{key}") for key in new],
        dynamic_partitions_requests=[organisations_partitions.build_add_request(new)] if new else [],
    )


def _discover(client, login: str) -> list[str]:
    return [partition_key(login, org.user_id) for org in client.discover_organisations()]


@dg.schedule(job=sync_organisation, cron_schedule="0 6 * * *", default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_sync(context: dg.ScheduleEvaluationContext, whitespace: WhitespaceResource, warehouse: WarehouseResource):
    """Every morning at 06:00, the change check of ``whitespace-etl sync`` over every known
    organisation: a run for each one whose list changed (loading the answer the check landed), an
    observation on ``raw_risks`` for each one that did not."""
    known = context.instance.get_dynamic_partitions(organisations_partitions.name)

    def check(client, login: str) -> dict:
        found_keys = [partition_key(login, o.user_id) for o in client.discover_organisations()]
        retire_departed(context.instance, warehouse, found_keys, bool(client.settings.user_ids), context.log.info,
                        login)
        mine = [split_key(k)[1] for k in known if k in found_keys]  # a new organisation's first run is the sensor's
        loaded = state.read(warehouse.settings(), mine)
        return {partition_key(login, mu): c for mu, c in changes.check_all(
            client, mine, warehouse.raw_path(), loaded, corporate_list=False,
            reconcile_every=warehouse.settings().reconcile_every).items()}

    checked, failed = whitespace.each_login(check, context.log.error)
    found = {key: c for checks in checked.values() for key, c in checks.items()}
    for key in known:  # a login that failed: each of its partitions runs, and fails with the login's message
        if split_key(key)[0] in failed:
            found[key] = changes.Check(split_key(key)[1], "its login failed")
    plan = SyncPlan.make({key: key for key in found}, found)
    for step in plan.unchanged:
        step.observe(context.instance)
    requests = plan.run_requests(f"{context.scheduled_execution_time:%Y-%m-%d}")
    return requests or dg.SkipReason(f"nothing changed in {len(found)} organisations")


daily_reference = dg.ScheduleDefinition(
    name="daily_reference",
    job=reference_data, cron_schedule="30 5 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning at 05:30, refresh the reference tables.",
)

daily_mi_report = dg.ScheduleDefinition(
    name="daily_mi_report",
    job=mi_report_job, cron_schedule="45 6 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning at 06:45, after the daily sync, land and load the MI report's changed rows.",
)

daily_marts = dg.ScheduleDefinition(
    name="daily_marts",
    job=build_marts, cron_schedule="0 7 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning at 07:00, after the daily sync, rebuild the marts.",
)
