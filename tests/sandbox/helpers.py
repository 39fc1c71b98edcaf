"""Raw HTTP helpers for sandbox tests: they speak to the sandbox as curl would, without the client."""

from __future__ import annotations

import httpx

from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SandboxServer
from sandbox.world import USERS

SUMO = USERS[0]
SINGLE = USERS[1]


def id_token(server: SandboxServer, refresh: str = SUMO_REFRESH_TOKEN) -> str:
    r = httpx.get(f"{server.sync_url}/{BUCKET}/_oidc_refresh", params={"refresh_token": refresh})
    assert r.status_code == 200, r.text
    return r.json()["id_token"]


def api(server: SandboxServer, path: str, token: str | None = None, user_id: str | None = None, **kw) -> httpx.Response:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if user_id:
        headers["UserID"] = user_id
    kw.setdefault("timeout", 30)
    return httpx.get(f"{server.api_url}{path}", headers=headers, **kw)
