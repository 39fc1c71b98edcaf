"""What the Dagster definitions share: the organisation partitions, the warehouse pool, the landing config."""

import warnings

import dagster as dg

organisations_partitions = dg.DynamicPartitionsDefinition(name="organisations")
"""One partition per organisation a login acts for: its MU id, or ``<login>:<MU id>`` when several logins
are configured (``WHITESPACE_LOGINS``), so a partition names the login whose token fetches it."""


def partition_key(login: str, user_id: str) -> str:
    """The partition of organisation ``user_id`` (an MU id) of ``login`` ("": the one login)."""
    return f"{login}:{user_id}" if login else user_id


def split_key(key: str) -> tuple[str, str]:
    """``(login, MU id)`` of a partition key (login "" for the one login's bare MU ids)."""
    login, _, user_id = key.rpartition(":")
    return login, user_id


def by_login(keys: list[str]) -> dict[str, list[str]]:
    """``keys`` grouped by the login that fetches them, each group in the keys' order."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(split_key(key)[0], []).append(key)
    return groups


warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
SINGLE_RUN = dg.BackfillPolicy.single_run()
"""The organisation assets take several partitions in one run (a backfill, a sync of several changed
organisations), each organisation in turn and in a transaction of its own: one run's fixed cost (its
events in Dagster's log) instead of one per organisation. ``backfill_policy`` is a beta parameter in
Dagster 1.13 (its warning is silenced above, once, by its message): the pin in ``constraints.txt`` holds
its behaviour, and ``tests/pipeline/test_batch.py`` and the daemon's backfill test check it."""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
"""The tags of a Dagster run over a range of partitions (what a single-run backfill launches)."""

WAREHOUSE_POOL = "duckdb_warehouse"
"""DuckDB has one writer: every asset that writes the warehouse is in this pool (limit 1)."""


class RiskTablesConfig(dg.Config):
    accept_shrink: bool = False
    """Apply the organisation's risk list even if it drops more of its risks than
    ``WHITESPACE_MAX_SHRINK`` allows (``whitespace-etl sync --accept-shrink``)."""


class DetailsConfig(dg.Config):
    full: bool = False
    """Fetch every root's contract and line sets again now, not only what changed
    (``whitespace-etl sync --full``); otherwise that happens every ``WHITESPACE_RECONCILE_DAYS``."""


class LandedConfig(dg.Config):
    reuse_sha256: str = ""
    """Set by the sync plan: its change check landed this answer moments ago, with this SHA-256, so
    the run records that one instead of fetching it again. Empty: fetch (the default). A run of one
    partition only."""
    reuse: dict[str, str] = {}
    """The same for a run of several partitions: partition key -> SHA-256 (a key left out: fetch)."""

    def sha256_for(self, key: str, keys: list[str]) -> str:
        if self.reuse_sha256 and len(keys) > 1:
            raise ValueError("reuse_sha256 names one answer but the run has several partitions: use reuse")
        return self.reuse.get(key, self.reuse_sha256)
