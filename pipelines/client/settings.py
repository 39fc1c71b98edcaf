"""Connection settings: from the environment, or the project's sandbox when nothing is set."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from pipelines.client.errors import ConfigError
from pipelines.client.redact import Secret

ENV_VARS = (
    "WHITESPACE_SYNC_URL",
    "WHITESPACE_BUCKET",
    "WHITESPACE_API_URL",
    "WHITESPACE_REFRESH_TOKEN",
    "WHITESPACE_USER_IDS",
    "WHITESPACE_USER_NAME",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    sync_url: str
    bucket: str
    api_url: str
    refresh_token: Secret
    user_ids: tuple[str, ...] = ()
    user_name: str | None = None
    timeout: float = 60.0
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        missing = [name for name, value in (("WHITESPACE_SYNC_URL", self.sync_url), ("WHITESPACE_BUCKET", self.bucket),
                                            ("WHITESPACE_API_URL", self.api_url),
                                            ("WHITESPACE_REFRESH_TOKEN", self.refresh_token)) if not value]
        if missing:
            raise ConfigError(f"Missing setting(s): {', '.join(missing)} (see the README's configuration table).")
        bad = [u for u in self.user_ids if not u.startswith("MU")]
        if bad:
            raise ConfigError(f"WHITESPACE_USER_IDS holds {bad[0]!r}, which is not an MU id (MU followed by a UUID).")

    @classmethod
    def from_values(
        cls,
        sync_url: str,
        bucket: str,
        api_url: str,
        refresh_token: str | Secret,
        user_ids: str | tuple[str, ...] | list[str] = (),
        user_name: str | None = None,
        **extra: float | int,
    ) -> Settings:
        if isinstance(user_ids, str):
            user_ids = tuple(u.strip() for u in user_ids.split(",") if u.strip())
        token = refresh_token if isinstance(refresh_token, Secret) else Secret(refresh_token or "")
        return cls(sync_url.rstrip("/"), bucket, api_url.rstrip("/"), token, tuple(user_ids), user_name or None,
                   **extra)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings | None:
        """Settings from ``WHITESPACE_*`` variables; None when none of them is set (use the sandbox)."""
        env = os.environ if env is None else env
        if not any(env.get(name) for name in ENV_VARS[:4]):
            return None
        return cls.from_values(
            env.get("WHITESPACE_SYNC_URL", ""),
            env.get("WHITESPACE_BUCKET", ""),
            env.get("WHITESPACE_API_URL", ""),
            env.get("WHITESPACE_REFRESH_TOKEN", ""),
            env.get("WHITESPACE_USER_IDS", ""),
            env.get("WHITESPACE_USER_NAME"),
        )
