"""What the Dagster definitions share: the organisation partitions, the warehouse pool, the landing config."""

import dagster as dg

organisations_partitions = dg.DynamicPartitionsDefinition(name="organisations")
"""One partition per organisation (MU id) the login acts for."""

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
    the run records that one instead of fetching it again. Empty: fetch (the default)."""
