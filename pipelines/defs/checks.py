"""Every asset check, declared once: its name, asset, description and rule. The assets build their
``check_specs`` and their results from the same declarations, so a name can never drift apart."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg

from models import marts as marts_models
from pipelines.client import endpoints
from pipelines.warehouse import quality
from pipelines.warehouse.quality import Outcome


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    asset: str
    description: str
    rule: Callable[..., Outcome]
    """``rule(conn, **context)``: the SQL behind the check (``pipelines/warehouse/quality.py``)."""
    warn_only: bool = False
    """A WARN check that never blocks what follows (for failures the next run retries)."""

    def spec(self) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(self.name, asset=self.asset, description=self.description,
                                 blocking=not self.warn_only)

    def evaluate(self, conn, **context: Any) -> dg.AssetCheckResult:
        outcome = self.rule(conn, **context)
        return dg.AssetCheckResult(
            check_name=self.name, asset_key=self.asset, passed=outcome.passed, description=self.description,
            severity=dg.AssetCheckSeverity.WARN if self.warn_only else dg.AssetCheckSeverity.ERROR,
            metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
                      for k, v in outcome.metadata.items()},
        )


def unique(table: str, key: str, description: str) -> Check:
    return Check(f"{table}_unique_key", table, description, lambda conn, **_: quality.unique_key(conn, table, key))


def has_parent(child: str, parent: str, column: str, description: str) -> Check:
    return Check(f"{child}_has_parent", child, description,
                 lambda conn, **_: quality.has_parent(conn, child, parent, column))


RISKS = (
    unique("risks", "risk_id", "risk_id is unique"),
    Check("risks_root_id_not_null", "risks", "every risk has a root id", lambda conn, **_: quality.no_null_root_ids(conn)),
    unique("risk_channels", "risk_id, position", "(risk_id, position) is unique"),
    has_parent("risk_channels", "risks", "risk_id", "every channel row has its risk"),
    Check("risk_channels_format", "risk_channels", "channels look like company_TEAM",
          lambda conn, **_: quality.channel_format(conn)),
    has_parent("risk_visibility", "risks", "risk_id", "every visibility row has its risk"),
    Check("risks_timestamps_parse", "risks", "every createdAt / updatedAt the platform sent was read (else NULL, kept in raw)",
          lambda conn, **_: quality.unparsed_timestamps(conn), warn_only=True),
    Check("risks_schema_drift", "risks",
          "risk list items carry only fields the loader knows, and every field it reads (new or missing ones are in schema_drift)",
          lambda conn, drift, **_: quality.detail_drift(drift), warn_only=True),
    Check("risk_visibility_matches_api", "risk_visibility",
          "the organisation's rows equal the distinct ids the API returned",
          lambda conn, user_id, landed, api_ids=None, **_: quality.partition_matches_api(
              conn, user_id, str(landed.path), landed.items, api_ids, tuple(a.position for a in landed.set_aside))),
    Check("risks_quarantine", "risks",
          "every element of the organisation's risk list was loaded: none set aside (not an object, no id or one "
          "outside the platform's grammar, nested too deep, too large; kept in the landing, listed in quarantine)",
          lambda conn, user_id, **_: quality.quarantined(conn, endpoints.RISKS, user_id), warn_only=True),
)

DETAILS = (
    Check("contracts_fetched", "contracts", "every root's detail calls succeeded (failures are retried next run)",
          lambda conn, user_id, **_: quality.detail_failures(conn, user_id), warn_only=True),
    unique("contracts", "root_id", "root_id is unique"),
    has_parent("contract_line_items", "contracts", "root_id", "every line item has its contract"),
    has_parent("market_lines", "risks", "root_id", "every market line's root is a known risk"),
    Check("market_lines_signed_total", "market_lines", "signed lines of a root total at most 100%",
          lambda conn, **_: quality.signed_total(conn)),
    Check("market_lines_values_parse", "market_lines",
          "every written and signed line % the platform sent parsed exactly (else NULL, the text kept beside it)",
          lambda conn, **_: quality.unparsed_values(conn, quality.MARKET_LINE_VALUES), warn_only=True),
    Check("defined_data_values_parse", "defined_data",
          "every amount, percentage and date tag of Defined Data parsed exactly (else NULL, the text kept)",
          lambda conn, **_: quality.unparsed_values(conn, quality.DEFINED_DATA_VALUES), warn_only=True),
    Check("contracts_values_parse", "contracts",
          "every facility flag, timestamp, inception and expiry date of the contracts parsed (else NULL, the text "
          "kept in raw)",
          lambda conn, **_: quality.unparsed_values(conn, quality.CONTRACT_VALUES), warn_only=True),
    Check("contracts_schema_drift", "contracts",
          "contracts and line impressions carry only known fields, and every field the loader reads",
          lambda conn, drift, **_: quality.detail_drift(drift), warn_only=True),
)

MI_REPORT = (
    unique("mi_report", "user_id, root_id", "(user_id, root_id) is unique"),
    has_parent("mi_report_carriers", "mi_report", "(user_id, root_id)", "every carrier row has its MI row"),
    Check("mi_report_values_parse", "mi_report",
          "every limit, premium, currency, brokerage, period and line % the platform sent parsed exactly "
          "(else NULL, the text kept beside it)",
          lambda conn, **_: quality.unparsed_values(conn), warn_only=True),
    Check("mi_report_key_once_in_answer", "mi_report",
          "no placement's row came twice in one MI answer (the last one is kept: a guess when they disagree)",
          lambda conn, arrived_twice=0, **_: quality.arrived_once("rootID", arrived_twice), warn_only=True),
    Check("mi_report_quarantine", "mi_report",
          "every MI report row landed was loaded: none set aside (no rootID or one outside the platform's grammar, "
          "not an object, nested too deep, too large; kept in the landing, listed in quarantine)",
          lambda conn, **_: quality.quarantined(conn, endpoints.MI_REPORT), warn_only=True),
    Check("mi_report_current", "mi_report",
          "every placement a synced organisation sees has an MI row at least as new as its risk list's last change",
          lambda conn, **_: quality.mi_current(conn), warn_only=True),
)

REFERENCE = (
    unique("organisations", "company_id", "company_id is unique"),
    Check("organisations_quarantine", "organisations",
          "every company, team and member of the corporate list was loaded: none set aside (no companyId, no channel, "
          "no uniqueID or one outside the platform's grammar; kept in the landing, listed in quarantine)",
          lambda conn, **_: quality.quarantined(conn, endpoints.CORPORATE), warn_only=True),
    has_parent("teams", "organisations", "company_id", "every team belongs to a known organisation"),
    Check("organisations_key_once_in_answer", "organisations",
          "no companyId came twice in the corporate list (the last one is kept: a guess when they disagree)",
          lambda conn, counts=None, **_: quality.arrived_once(
              "companyId", (counts or {}).get("organisations_arrived_twice", 0)), warn_only=True),
    Check("users_key_once_in_answer", "users",
          "no member's uniqueID came twice in the corporate list (the last one is kept: a guess when they disagree)",
          lambda conn, counts=None, **_: quality.arrived_once(
              "uniqueID", (counts or {}).get("users_arrived_twice", 0)), warn_only=True),
    Check("organisations_values_parse", "organisations",
          "every flag and timestamp of the companies parsed (else NULL, the text kept in raw)",
          lambda conn, **_: quality.unparsed_values(conn, quality.REFERENCE_VALUES), warn_only=True),
    unique("users", "user_id", "user_id (MU id) is unique"),
    has_parent("users__teams", "users", "user_id", "every row has its user"),
)


def _tie(name: str) -> Check:
    mart, description, _mart_sql, _base_sql = quality.MART_TIES[name]
    return Check(name, mart, description,
                 lambda conn, open_item_days, **_: quality.mart_ties_back(conn, name, open_item_days))


MARTS = (
    *(unique(mart.name, ", ".join(mart.info["key"]), f"({', '.join(mart.info['key'])}) is unique: the mart's "
             "declared key, which PostgreSQL holds it to") for mart in marts_models.MARTS),
    *(_tie(name) for name in quality.MART_TIES),
    Check("mart_carrier_shares_sum_to_premium", "mart_carrier_shares",
          "for every fully signed placement, the carriers' signed premium shares add up to its premium",
          lambda conn, **_: quality.shares_sum_to_premium(conn)),
)


def specs(checks: Iterable[Check]) -> list[dg.AssetCheckSpec]:
    return [c.spec() for c in checks]


def evaluate(checks: Iterable[Check], conn, **context: Any) -> list[dg.AssetCheckResult]:
    return [c.evaluate(conn, **context) for c in checks]


PARTITIONS = "partitions"
FAILED = "failed_organisations"
"""The metadata of a check result over several organisations: which ones it covered, which ones failed."""


def per_partition(evaluation: dg.AssetCheckEvaluation) -> dict[str, bool] | None:
    """Partition -> passed, for a result over several organisations (``combine``); None for any other."""
    covered = evaluation.metadata.get(PARTITIONS)
    if covered is None:
        return None
    failed = set(evaluation.metadata[FAILED].value)
    return {key: key not in failed for key in covered.value}


def combine(results: dict[str, list[dg.AssetCheckResult]]) -> list[dg.AssetCheckResult]:
    """A run of several organisations gives each check one result (Dagster takes one per check and run):
    it passes when the check passed for every organisation; its metadata counts them, names those it
    failed for, and keeps each of those one's own metadata under its partition key. A run of one
    organisation: that organisation's results as they are."""
    if len(results) == 1:
        return next(iter(results.values()))
    keys = list(results)
    combined = []
    for per_key in zip(*results.values(), strict=True):
        first = per_key[0]
        failed = {key: r for key, r in zip(keys, per_key, strict=True) if not r.passed}
        metadata: dict[str, Any] = {"organisations": len(keys), PARTITIONS: dg.MetadataValue.json(keys),
                                    FAILED: dg.MetadataValue.json(list(failed))}
        for key, r in failed.items():
            metadata.update({f"{key} {name}": value for name, value in r.metadata.items()})
        combined.append(dg.AssetCheckResult(
            check_name=first.check_name, asset_key=first.asset_key, passed=not failed, severity=first.severity,
            description=first.description, metadata=metadata))
    return combined
