"""Sync Gateway's half of the sandbox: refresh tokens in, signed JWT id_tokens out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any

from sandbox.world import USER_BY_TOKEN, User


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues id_tokens for renewable (refresh) tokens and checks them on API calls."""

    def __init__(self, issuer: str, lifetime: float = 3600.0) -> None:
        self.issuer = issuer
        self.lifetime = lifetime
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._revoked: set[str] = set()
        self._budget: dict[str, int] = {}  # jti -> API requests left (token that dies early)
        self.refreshes = 0

    def revoke(self, refresh_token: str) -> None:
        """What a later browser login does to a renewable token: it stops working."""
        with self._lock:
            self._revoked.add(refresh_token)

    def unrevoke_all(self) -> None:
        with self._lock:
            self._revoked.clear()

    def user_for_refresh(self, refresh_token: str) -> User | None:
        with self._lock:
            if refresh_token in self._revoked:
                return None
        return USER_BY_TOKEN.get(refresh_token)

    def issue(self, user: User, dies_after: int = 0) -> dict[str, Any]:
        now = int(time.time())
        jti = secrets.token_hex(8)
        claims = {
            "iss": self.issuer,
            "sub": user.name.lower().replace(" ", "."),
            "aud": "whitespace-api",
            "iat": now,
            "exp": now + int(self.lifetime) if self.lifetime >= 1 else now + 1,
            "jti": jti,
            "name": user.name,
        }
        if self.lifetime < 1:  # sub-second lifetimes (tests): exp in the past at once
            claims["exp"] = now
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        with self._lock:
            self.refreshes += 1
            if dies_after > 0:
                self._budget[jti] = dies_after
        return {
            "id_token": f"{header}.{payload}.{signature}",
            "session_id": secrets.token_hex(20),
            "name": claims["sub"],
        }

    def check(self, token: str) -> str | None:
        """The user name behind a valid, unexpired token (spending its request budget), or None."""
        try:
            header, payload, signature = token.split(".")
            expected = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(expected, signature):
                return None
            claims = json.loads(_unb64(payload))
        except (ValueError, json.JSONDecodeError):
            return None
        if claims.get("exp", 0) <= time.time():
            return None
        with self._lock:
            left = self._budget.get(claims["jti"])
            if left is not None:
                if left <= 0:
                    return None
                self._budget[claims["jti"]] = left - 1
        return claims["name"]
