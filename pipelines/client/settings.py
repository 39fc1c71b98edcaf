"""A login's connection settings, checked when made (``pipelines.config`` reads them from the environment)."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from pipelines.client import documents
from pipelines.client.errors import ConfigError
from pipelines.client.redact import Secret, redact


def _check_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} is not an http(s) URL: {redact(value)!r} (expected e.g. https://host/api).")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"{name} has a port that is not a number: {redact(value)!r}.") from None


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
    token_variable: str = "WHITESPACE_REFRESH_TOKEN"
    """The variable the renewable token was read from (named when it is rejected)."""
    max_answer_bytes: int = 4_000_000_000
    """The largest answer taken (``WHITESPACE_MAX_ANSWER_MB``): a larger one fails that request only."""

    def __post_init__(self) -> None:
        missing = [name for name, value in (("WHITESPACE_SYNC_URL", self.sync_url), ("WHITESPACE_BUCKET", self.bucket),
                                            ("WHITESPACE_API_URL", self.api_url),
                                            (self.token_variable, self.refresh_token)) if not value]
        if missing:
            raise ConfigError(f"Missing setting(s): {', '.join(missing)} (see the README's configuration table).")
        _check_url("WHITESPACE_SYNC_URL", self.sync_url)
        _check_url("WHITESPACE_API_URL", self.api_url)
        if "/" in self.bucket.strip("/"):
            raise ConfigError(f"WHITESPACE_BUCKET is a bucket name, not a path: {self.bucket!r}.")
        bad = [u for u in self.user_ids if not documents.is_user_id(u)]
        if bad:
            raise ConfigError(f"WHITESPACE_USER_IDS holds {documents.shown(bad[0])}, which is not an MU id (MU followed "
                              "by a UUID).")
        if self.timeout <= 0:
            raise ConfigError("WHITESPACE_TIMEOUT_SECONDS must be more than 0.")

    @classmethod
    def from_values(
        cls,
        sync_url: str,
        bucket: str,
        api_url: str,
        refresh_token: str | Secret,
        user_ids: str | tuple[str, ...] | list[str] = (),
        user_name: str | None = None,
        **extra: float | int | str,
    ) -> Settings:
        if isinstance(user_ids, str):
            user_ids = tuple(u.strip() for u in user_ids.split(",") if u.strip())
        token = refresh_token if isinstance(refresh_token, Secret) else Secret(refresh_token or "")
        return cls(sync_url.rstrip("/"), bucket.strip("/"), api_url.rstrip("/"), token, tuple(user_ids),
                   user_name or None, **extra)
