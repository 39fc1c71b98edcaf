"""One TLS context for every HTTP client of a process."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls() -> ssl.SSLContext:
    """The context every client verifies servers with: certifi's authorities, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when set, read as httpx reads them. httpx builds one for each client it makes
    (about 20 ms: a sync makes a client per login and step, and one per token refresh); this one is
    built once, when first needed, and shared (an ``SSLContext`` is safe to share between threads)."""
    return httpx.create_ssl_context(trust_env=True)
