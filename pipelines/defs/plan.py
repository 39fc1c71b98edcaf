"""The sync plan: what the change check found, turned into the runs to start and the observations to
record. ``whitespace-etl sync`` and the ``daily_sync`` schedule both consume it."""

from __future__ import annotations

import dataclasses
from typing import Any

import dagster as dg

from pipelines.defs.freshness import confirm_current
from pipelines.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, organisations_partitions, split_key
from pipelines.defs.resources import WarehouseResource
from pipelines.extract.changes import CORPORATE, UNCHANGED, Check
from pipelines.warehouse import risks as risk_loader

ORGANISATION_JOB = "sync_organisation"
REFERENCE_JOB = "reference_data"
MARTS_JOB = "build_marts"
MI_JOB = "mi_report"
MI_AND_MARTS_JOB = "mi_report_and_marts"
CHANGE_TAG = "whitespace/change"


@dataclasses.dataclass(frozen=True)
class Step:
    """One organisation (or the corporate list): the job that loads it and what the check found."""

    key: str
    """MU id, or ``CORPORATE``."""
    label: str
    check: Check | None
    """None: not checked (every run forced)."""

    @property
    def job(self) -> str:
        return REFERENCE_JOB if self.key == CORPORATE else ORGANISATION_JOB

    @property
    def landing_asset(self) -> str:
        return "raw_corporate" if self.key == CORPORATE else "raw_risks"

    @property
    def partition(self) -> str | None:
        return None if self.key == CORPORATE else self.key

    @property
    def needs_run(self) -> bool:
        return self.check is None or self.check.changed

    @property
    def reason(self) -> str:
        return self.check.reason if self.check is not None else "forced"

    def run_config(self, accept_shrink: bool = False, full: bool = False) -> dict[str, Any]:
        """Changed: the run records the answer the check landed (``reuse_sha256``) instead of fetching it
        again. ``accept_shrink``: an organisation's list is applied even if it drops many of its risks."""
        landed = self.check.landed if self.check is not None else None
        organisation = self.key != CORPORATE
        ops = _ops(self.landing_asset, {"reuse_sha256": landed.sha256} if landed is not None else None,
                   accept_shrink and organisation, full and organisation)
        return {"ops": ops} if ops else {}

    @property
    def table_asset(self) -> str:
        """The table whose freshness says the organisation (or the reference data) is current."""
        return "organisations" if self.key == CORPORATE else "risks"

    def observe(self, instance: dg.DagsterInstance) -> None:
        """An unchanged answer is not landed again; its asset gets an observation saying it was checked,
        and its table one saying it is current (what the freshness checks read)."""
        landed = self.check.landed if self.check else None
        instance.report_runless_asset_event(dg.AssetObservation(
            asset_key=self.landing_asset, partition=self.partition,
            description="checked: the same answer as the one loaded",
            metadata={"unchanged_since": landed.fetched_at.isoformat() if landed else "",
                      "sha256": landed.sha256 if landed else "", "items": landed.items if landed else 0},
        ))
        confirm_current(instance, self.table_asset, self.partition)


def range_run(steps: list[Step], accept_shrink: bool = False, full: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """The run config and tags of one run over ``steps``' organisations, consecutive partitions: each
    answer the check landed is recorded, not fetched again (``reuse``)."""
    reuse = {s.key: s.check.landed.sha256 for s in steps if s.check is not None and s.check.landed is not None}
    return {"ops": _ops("raw_risks", {"reuse": reuse}, accept_shrink, full)}, \
        {RANGE_START_TAG: steps[0].key, RANGE_END_TAG: steps[-1].key}


def _ops(landing_asset: str, landing: dict[str, Any] | None, accept_shrink: bool, full: bool) -> dict[str, Any]:
    """The ops' config of a run: what its landing asset reuses, and the sync's ``--accept-shrink`` and ``--full``."""
    ops: dict[str, Any] = {}
    if landing is not None:
        ops[landing_asset] = {"config": landing}
    if accept_shrink:
        ops["risk_tables"] = {"config": {"accept_shrink": True}}
    if full:
        ops["raw_risk_details"] = {"config": {"full": True}}
    return ops


@dataclasses.dataclass(frozen=True)
class SyncPlan:
    steps: list[Step]
    forced: bool
    mi_rows: int | None = None
    """MI report rows the check landed (None: the MI report was not checked, so its job runs)."""
    mi_waiting: bool = True
    """A landed MI answer is not in the warehouse yet (or the warehouse could not be read)."""
    failed_logins: dict[str, str] = dataclasses.field(default_factory=dict)
    """Login -> why it could not be used (several logins: the others sync)."""
    marts_built: tuple[float, int] | None = None
    """When the marts were built and with which open-item age, if from every load the warehouse holds
    (``WarehouseState.marts_built``); None: not, or not known."""

    @property
    def mi_needed(self) -> bool:
        return self.forced or self.mi_rows is None or self.mi_rows > 0 or self.mi_waiting

    @classmethod
    def make(cls, labels: dict[str, str], checks: dict[str, Check] | None) -> SyncPlan:
        """``labels``: key -> label, in the order to run (the corporate list first, when it is part of it)."""
        return cls([Step(k, label, None if checks is None else checks[k]) for k, label in labels.items()],
                   checks is None)

    @property
    def runs(self) -> list[Step]:
        return [s for s in self.steps if s.needs_run]

    @property
    def unchanged(self) -> list[Step]:
        return [s for s in self.steps if not s.needs_run]

    def summary(self) -> str:
        if self.forced:
            return "every run forced"
        mi = "" if self.mi_rows is None else f", {self.mi_rows:,} MI report row{'s' if self.mi_rows != 1 else ''} changed"
        return f"{len(self.runs)} of {len(self.steps)} lists changed{mi}"

    def run_requests(self, run_key_prefix: str) -> list[dg.RunRequest]:
        """The schedule's requests: one per organisation that changed."""
        return [dg.RunRequest(partition_key=s.partition, run_config=s.run_config(),
                              run_key=f"{run_key_prefix}-{s.key}", tags={CHANGE_TAG: s.reason})
                for s in self.runs if s.key != CORPORATE]


def retire_departed(instance: dg.DagsterInstance, warehouse: WarehouseResource, discovered: list[str],
                    chosen: bool, log=print, login: str = "") -> list[str]:
    """Organisations with a partition of ``login`` that it no longer acts for (discovery, whose partition
    keys are ``discovered``, no longer finds them) are retired: their rows stop being current
    (``risks_gone``), their partition goes, so no daily run fails for ever on them. When the MU ids were
    chosen (``chosen``) nothing is inferred from one being left out; other logins' partitions are theirs."""
    if chosen:
        return []
    departed = [key for key in instance.get_dynamic_partitions(organisations_partitions.name)
                if split_key(key)[0] == login and key not in discovered]
    for key in departed:
        with warehouse.session(scope=risk_loader.retire_scope(split_key(key)[1])) as conn:
            gone = risk_loader.retire(conn, split_key(key)[1])
        instance.delete_dynamic_partition(organisations_partitions.name, key)
        log(f"Retired {key}: no longer one of this login's organisations; {gone:,} risks only it saw "
            "moved to risks_gone")
    return departed


__all__ = ["CORPORATE", "UNCHANGED", "SyncPlan", "Step"]
