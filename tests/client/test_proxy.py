"""Behind a corporate proxy: the token refresh goes through ``HTTP(S)_PROXY`` like the API calls, and
``NO_PROXY`` is honoured by both."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pipelines.client import WhitespaceClient
from tests.conftest import settings_for


class ForwardProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy on loopback that records the URLs it forwards."""

    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
        with httpx.Client(trust_env=False, timeout=30) as http:
            upstream = http.get(self.path, headers=headers)
        body = upstream.content
        self.send_response(upstream.status_code)
        for name in ("Content-Type", "Retry-After"):
            if name in upstream.headers:
                self.send_header(name, upstream.headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Recording", (ForwardProxy,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    yield seen
    monkeypatch.delenv("HTTP_PROXY")
    server.shutdown()
    server.server_close()


def test_refresh_and_api_calls_go_through_the_proxy(sandbox, proxy) -> None:
    with WhitespaceClient(settings_for(sandbox)) as client:
        assert client.for_user(client.discover_organisations()[0].user_id).risks()
    assert any("/_oidc_refresh?" in url for url in proxy), proxy
    assert any(url.endswith("/api/risks") for url in proxy), proxy


def test_no_proxy_is_honoured_by_both(sandbox, proxy, monkeypatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with WhitespaceClient(settings_for(sandbox)) as client:
        assert client.discover_organisations()
    assert proxy == []
