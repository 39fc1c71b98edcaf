"""Dagster resources: thin wrappers that turn configuration into a client or a warehouse path."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from pipelines.client import Settings, WhitespaceClient

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"


class WhitespaceResource(dg.ConfigurableResource):
    """The Whitespace login. Empty fields fall back to the ``WHITESPACE_*`` environment variables
    at run time; with none of those set, an embedded sandbox of the platform is used. Set the
    refresh token only through ``dg.EnvVar`` so the UI shows the variable's name, never its value."""

    sync_url: str = ""
    bucket: str = ""
    api_url: str = ""
    refresh_token: str = ""
    user_ids: str = ""
    user_name: str = ""
    max_concurrency: int = 8
    timeout_seconds: float = 0.0
    """Per-request timeout; 0 means ``WHITESPACE_TIMEOUT_SECONDS`` or 60."""
    sandbox_scale: float = 1.0
    sandbox_seed: int = 1

    def settings(self) -> Settings | None:
        """Configured values over environment variables; None when neither names a platform."""
        env = os.environ
        values = {
            "sync_url": self.sync_url or env.get("WHITESPACE_SYNC_URL", ""),
            "bucket": self.bucket or env.get("WHITESPACE_BUCKET", ""),
            "api_url": self.api_url or env.get("WHITESPACE_API_URL", ""),
            "refresh_token": self.refresh_token or env.get("WHITESPACE_REFRESH_TOKEN", ""),
        }
        if not any(values.values()):
            return None
        return Settings.from_values(
            **values,
            user_ids=self.user_ids or env.get("WHITESPACE_USER_IDS", ""),
            user_name=self.user_name or env.get("WHITESPACE_USER_NAME") or None,
            timeout=self.timeout(),
            max_concurrency=self.max_concurrency,
        )

    def timeout(self) -> float:
        return self.timeout_seconds or float(os.environ.get("WHITESPACE_TIMEOUT_SECONDS") or 60.0)

    @contextlib.contextmanager
    def client(self) -> Iterator[WhitespaceClient]:
        settings = self.settings()
        if settings is not None:
            with WhitespaceClient(settings) as client:
                yield client
            return
        from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer

        with SandboxServer(seed=self.sandbox_seed, scale=self.sandbox_scale) as server:
            settings = Settings.from_values(server.sync_url, BUCKET, server.api_url, SUMO_REFRESH_TOKEN,
                                            user_name=SUMO_USER_NAME, timeout=self.timeout(),
                                            max_concurrency=self.max_concurrency)
            with WhitespaceClient(settings) as client:
                yield client


class WarehouseResource(dg.ConfigurableResource):
    """Where the DuckDB warehouse file and the raw landing live (``WHITESPACE_WAREHOUSE``,
    default ``data/warehouse.duckdb``; raw answers in ``raw/`` and the marts' Parquet export in
    ``marts/`` beside it)."""

    path: str = ""
    raw_dir: str = ""

    def db_path(self) -> Path:
        return Path(self.path or os.environ.get("WHITESPACE_WAREHOUSE") or DEFAULT_WAREHOUSE)

    def raw_path(self) -> Path:
        return Path(self.raw_dir) if self.raw_dir else self.db_path().parent / "raw"

    def marts_path(self) -> Path:
        """Where the marts are exported as Parquet: ``marts/`` beside the warehouse file."""
        return self.db_path().parent / "marts"
