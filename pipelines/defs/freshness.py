"""Freshness: the base tables and the marts each have a check that fails (WARN) when they were neither
updated nor confirmed current for ``WHITESPACE_FRESH_HOURS`` (26 by default: a day and the daily
schedule's slack). Dagster's own last-update freshness checks, evaluated by its freshness-check sensor
(the daemon, ``dagster dev``); a failing one shows on the asset in the UI and is alerted like any
failing check (``pipelines.defs.alerts``).

Why checks and not ``FreshnessPolicy``: Dagster's freshness policies count only materializations,
and a sync that finds nothing changed records an observation (nothing is loaded), so a policy would
call a current table stale every quiet day. The checks read observations that carry
``dagster/last_updated_timestamp``, which the sync records for a table it confirmed current
(``pipelines.defs.plan.confirm_current``).
"""

from __future__ import annotations

import datetime as dt
import time
import warnings

import dagster as dg

from models import MART_TABLES
from pipelines import config

FRESH_TABLES = ("risks", "organisations", "mi_report", *MART_TABLES)
"""A base table per kind of load (an organisation's risks, the reference data, the MI report) and every mart."""
SENSOR = "freshness_checks_sensor"
CHECK = "freshness_check"
"""The name Dagster gives each asset's last-update freshness check."""
LAST_UPDATED = "dagster/last_updated_timestamp"
"""The metadata key Dagster's freshness checks read an observation's update time from."""
FRESH_UNTIL = "dagster/fresh_until_timestamp"
"""When a passing freshness check may next fail: the freshness sensor evaluates it again then."""


def build(fresh_hours: float | None = None) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    hours = config.fresh_hours() if fresh_hours is None else fresh_hours
    with warnings.catch_warnings():  # "superseded by FreshnessPolicy": see the module's docstring for why not
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        checks = list(dg.build_last_update_freshness_checks(
            assets=[dg.AssetKey(t) for t in FRESH_TABLES], lower_bound_delta=dt.timedelta(hours=hours),
            severity=dg.AssetCheckSeverity.WARN))
        sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, name=SENSOR, minimum_interval_seconds=300,
            default_status=dg.DefaultSensorStatus.RUNNING)
    return checks, sensor


def confirm_current(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> None:
    """Records that ``asset`` is current now although nothing was loaded (the platform's answer was the
    same): an observation the freshness checks count as an update (``dagster/last_updated_timestamp``),
    and its freshness check's result, which is known (fresh: confirmed just now). Without that result a
    freshness check that failed would stay failed until the table changes: Dagster's freshness sensor
    does not evaluate a failed check again, and no run starts for an unchanged table."""
    now = time.time()
    instance.report_runless_asset_event(dg.AssetObservation(
        asset_key=asset, partition=partition, description="current: the platform's answer did not change",
        metadata={LAST_UPDATED: dg.MetadataValue.timestamp(now)},
    ))
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset), check_name=CHECK, passed=True,
        severity=dg.AssetCheckSeverity.WARN, description="Asset is currently fresh: the sync confirmed it current.",
        metadata={LAST_UPDATED: dg.MetadataValue.timestamp(now),
                  FRESH_UNTIL: dg.MetadataValue.timestamp(now + config.fresh_hours() * 3600)},
    ))
