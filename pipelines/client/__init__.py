"""The Whitespace API client: token lifecycle, SUMO, retries and clear errors. No Dagster here."""

from pipelines.client.client import Download, Organisation, WhitespaceClient
from pipelines.client.errors import (
    ApiError,
    ConfigError,
    InvalidUserId,
    NotAuthorised,
    RefreshTokenRejected,
    TransportError,
    WhitespaceError,
    stops_everything,
)
from pipelines.client.redact import Secret, redact
from pipelines.client.retry import RetryPolicy
from pipelines.client.settings import Settings

__all__ = [
    "ApiError",
    "ConfigError",
    "Download",
    "InvalidUserId",
    "NotAuthorised",
    "Organisation",
    "RefreshTokenRejected",
    "RetryPolicy",
    "Secret",
    "Settings",
    "TransportError",
    "WhitespaceClient",
    "WhitespaceError",
    "redact",
    "stops_everything",
]
