"""A faithful local stand-in for the Whitespace platform: Sync Gateway and the API on one root.

``SandboxServer`` runs it in-process on a free loopback port (tests, the demo);
``sandbox_process`` runs it in a process of its own (benchmarks, options that change its registry);
``whitespace-etl sandbox`` runs it in the foreground.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from sandbox.faults import Faults
from sandbox.server import Handler, Sandbox
from sandbox.world import BUCKET, USERS

SUMO_REFRESH_TOKEN = USERS[0].refresh_token
SINGLE_REFRESH_TOKEN = USERS[1].refresh_token
SUMO_USER_NAME = USERS[0].name


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SandboxServer:
    """The sandbox on ``host:port`` (port 0: a free one), serving from a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
        scale: float = 1.0,
        token_lifetime: float = 3600.0,
        faults: Faults | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.sandbox = Sandbox(seed=seed, scale=scale, token_lifetime=token_lifetime, faults=faults,
                               state_file=state_file)
        handler = type("BoundHandler", (Handler,), {"sandbox": self.sandbox})
        self.httpd = _Server((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def sync_url(self) -> str:
        return f"{self.url}/sync"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def login(self, token: str = SUMO_REFRESH_TOKEN) -> dict[str, str]:
        """The values of a login to this sandbox, by the names of the resource's fields."""
        values = {"sync_url": self.sync_url, "bucket": BUCKET, "api_url": self.api_url, "refresh_token": token}
        if token == SUMO_REFRESH_TOKEN:
            values["user_name"] = SUMO_USER_NAME
        return values

    @property
    def world(self):
        return self.sandbox.world

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="whitespace-sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin shortcuts (the same calls a person makes with curl) -----------------------------
    def admin(self, call: str, **body: Any) -> dict[str, Any]:
        method = "GET" if call == "stats" else "POST"
        response = httpx.request(method, f"{self.url}/_sandbox/{call}", json=body or None, timeout=30, trust_env=False)
        response.raise_for_status()
        return response.json()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self.admin("faults", **faults)

    def advance(self, **changes: Any) -> dict[str, Any]:
        return self.admin("advance", **changes)

    def stats(self) -> dict[str, Any]:
        return self.admin("stats")


__all__ = ["BUCKET", "SINGLE_REFRESH_TOKEN", "SUMO_REFRESH_TOKEN", "SUMO_USER_NAME", "Faults", "SandboxServer"]


@contextlib.contextmanager
def sandbox_process(scale: float = 1.0, latency_ms: float = 0.0, organisations: int = 0, logins: int = 0,
                    login_organisations: int = 10) -> Iterator[str]:
    """``whitespace-etl sandbox`` in a child process on a free port; yields its root URL once it answers.
    ``logins``: that many extra logins (``sandbox.world.add_logins``), each with ``login_organisations``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.app.cli", "sandbox", "--port", str(port), "--scale",
                             str(scale), "--latency-ms", str(latency_ms), "--organisations", str(organisations),
                             "--logins", str(logins), "--login-organisations", str(login_organisations)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/api/version", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError(f"the sandbox process exited with {proc.returncode}") from None
                time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> int:
    """Asks the process to stop (SIGTERM); one that has not exited ``grace`` seconds later (a busy
    machine, a request still being served) is killed. Never raises for a slow exit: what the caller
    gathered while it ran is not lost to its shutdown. Returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
