"""The token lifecycle: renewable token -> Sync Gateway ``_oidc_refresh`` -> bearer id_token.

One ``TokenManager`` per login is shared by every thread: a lock makes concurrent callers that
find the token expired wait for one refresh instead of starting their own.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Generator

import httpx

from pipelines.client import retry
from pipelines.client.errors import ApiError, ConfigError, RefreshTokenRejected, TransportError
from pipelines.client.redact import Secret, redact, secret_url
from pipelines.client.tls import tls

log = logging.getLogger("whitespace.auth")


class _RedactHttpxLog(logging.Filter):
    """httpx logs every request's URL; the refresh URL carries the renewable token. Each record is
    redacted as httpx makes it, so no handler ever sees the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


logging.getLogger("httpx").addFilter(_RedactHttpxLog())

MAX_MARGIN = 60.0
"""Refresh at most this many seconds before ``exp``..."""
MARGIN_FRACTION = 0.1
"""...and never earlier than this fraction of the token's lifetime (short-lived tokens)."""


def jwt_claims(token: str) -> dict:
    """The JWT payload, read without verifying the signature (we are not its audience's verifier)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


class TokenManager:
    """Holds the current id_token and renews it before ``exp``, after a 401, or when asked."""

    def __init__(
        self,
        sync_url: str,
        bucket: str,
        refresh_token: str | Secret,
        timeout: float = 30.0,
        policy: retry.RetryPolicy | None = None,
        token_variable: str = "WHITESPACE_REFRESH_TOKEN",
    ) -> None:
        self._token_variable = token_variable
        """The variable that holds this renewable token: where a rejection tells the user to put a new one."""
        self._refresh_token = refresh_token if isinstance(refresh_token, Secret) else Secret(refresh_token)
        self._bucket = bucket
        self._base = f"{sync_url.rstrip('/')}/{bucket}/_oidc_refresh"
        self._rejected: RefreshTokenRejected | None = None
        """Once Sync Gateway has rejected the renewable token, it is never sent again: every caller gets this."""
        self._timeout = timeout
        self._policy = policy or retry.RetryPolicy()
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self.generation = 0
        """How many tokens this manager has obtained; a 401 on generation g refreshes only once."""
        self.refresh_count = 0

    def __repr__(self) -> str:
        return f"TokenManager({self._base!r}, token={'set' if self._token else 'none'}, generation={self.generation})"

    def current(self) -> tuple[str, int]:
        """A token that is valid for at least the margin, and its generation."""
        if self._token is None or time.time() >= self._refresh_at:
            with self._lock:
                if self._token is None or time.time() >= self._refresh_at:
                    self._refresh_locked()
        assert self._token is not None
        return self._token.reveal(), self.generation

    def invalidate(self, generation: int) -> None:
        """The API refused token ``generation``: the next ``current`` refreshes (only once)."""
        with self._lock:
            if generation == self.generation:
                self._refresh_at = 0.0

    def _refresh_locked(self) -> None:
        if self._rejected is not None:
            raise self._rejected
        url, shown = secret_url(self._base, refresh_token=self._refresh_token)
        try:
            data = retry.run(self._policy, lambda: self._refresh_once(url, shown), "token refresh")
        except RefreshTokenRejected as exc:
            self._rejected = exc
            raise
        except ApiError as exc:
            exc.transient = False  # retried here already: the request that needed the token must not again
            raise
        token = data["id_token"]
        claims = jwt_claims(token)
        now = time.time()
        exp = float(claims.get("exp") or now + 300)  # unknown lifetime: assume five minutes
        iat = float(claims.get("iat") or now)
        margin = min(MAX_MARGIN, max(0.0, (exp - iat) * MARGIN_FRACTION))
        self._token = Secret(token)
        # A token that arrives with less life left than the margin is still used for half of it,
        # rather than renewed on every request.
        self._refresh_at = max(exp - margin, now + (exp - now) / 2)
        self.generation += 1
        self.refresh_count += 1
        log.info("Obtained an id_token from %s (valid for %.0f s; renewing %.0f s early)", shown, exp - now, margin)

    def _refresh_once(self, url: str, shown: str) -> dict:
        """One ``_oidc_refresh`` call: the answer with its id_token, or a typed error (transient or not)."""
        try:
            with httpx.Client(timeout=self._timeout, trust_env=True, verify=tls()) as http:  # HTTP(S)_PROXY, NO_PROXY
                response = http.get(url)
        except httpx.TransportError as exc:
            raise TransportError(f"Sync Gateway unreachable: {type(exc).__name__}", None, shown,
                                 transient=True) from None
        body = response.content
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        reason = data.get("reason", "") if isinstance(data, dict) else ""
        status = response.status_code
        if status in (401, 500) and "Unable to refresh token" in reason:
            raise RefreshTokenRejected(status, reason, self._token_variable)
        if status == 404 and "no such database" in reason:
            raise ConfigError(f"Sync Gateway has no bucket {self._bucket!r} ({reason}): check WHITESPACE_BUCKET.")
        if status == 404:
            raise ConfigError(f"Sync Gateway answered 404 at {shown}: check WHITESPACE_SYNC_URL ($ROOT/sync).")
        if status == 400:
            raise ApiError(f"Sync Gateway refused the refresh: {reason or 'bad request'}", 400, shown)
        if status == 200 and isinstance(data, dict) and data.get("id_token"):
            return data
        # A 200 body holds (part of) an id_token: it never goes into an error's excerpt.
        excerpt = "" if status == 200 else body[:120].decode("utf-8", "replace")
        error = ApiError(f"Sync Gateway answered without a whole id_token: {reason or 'no JSON'}", status, shown,
                         excerpt, status in retry.RETRY_STATUSES or status == 200)
        error.retry_after = response.headers.get("Retry-After")  # type: ignore[attr-defined]
        raise error


class BearerAuth(httpx.Auth):
    """Adds the bearer token; on ``401 Invalid WSAUTH`` renews it once and repeats the request once."""

    # Bodies are read only for 401s, so large answers can still be streamed to disk.
    def __init__(self, tokens: TokenManager) -> None:
        self.tokens = tokens

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token, generation = self.tokens.current()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and is_token_401(response.read()):
            self.tokens.invalidate(generation)
            token, _ = self.tokens.current()
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


def is_token_401(body: bytes) -> bool:
    """A 401 that a new token can cure: ``Invalid WSAUTH``, but not its SUMO ``UserID`` variant."""
    try:
        reason = str(json.loads(body).get("reason", ""))
    except (ValueError, AttributeError):
        return True
    return "UserID" not in reason
