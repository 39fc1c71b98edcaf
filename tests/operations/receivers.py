"""Loopback alert receivers: an SMTP server (aiosmtpd, with a login) and a Slack-style webhook."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port

SMTP_USER = "alerts@example.test"
SMTP_PASSWORD = "smtp-secret-5f1c"  # noqa: S105
WEBHOOK_PATH = "/services/T000/B000/webhook-secret-9a7e"
"""Slack puts the secret in the webhook's path: it must never show in a message."""


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.received = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        with self.received:
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(f"{msg['Subject']}\n{msg.get_content()}")
            self.received.notify_all()
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER \
        and auth_data.password.decode() == SMTP_PASSWORD
    return AuthResult(success=ok)


class Webhook(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.posts: list[dict] = []
        super().__init__(("127.0.0.1", 0), _Hook)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{WEBHOOK_PATH}"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = self.path == WEBHOOK_PATH
        if ok:
            self.server.posts.append(json.loads(body))
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no such hook")

    def log_message(self, *args) -> None:
        pass


class Receivers:
    """Both receivers running; ``env`` is what points the project's alerts at them."""

    def __enter__(self) -> Receivers:
        self.mailbox = Mailbox()
        self.smtp = Controller(self.mailbox, hostname="127.0.0.1", port=free_port(), authenticator=_authenticate,
                               auth_require_tls=False)
        self.smtp.start()
        self.webhook = Webhook()
        threading.Thread(target=self.webhook.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.smtp.stop()
        self.webhook.shutdown()
        self.webhook.server_close()

    @property
    def env(self) -> dict[str, str]:
        return {"WHITESPACE_ALERT_WEBHOOK_URL": self.webhook.url, "WHITESPACE_ALERT_SMTP_HOST": "127.0.0.1",
                "WHITESPACE_ALERT_SMTP_PORT": str(self.smtp.port), "WHITESPACE_ALERT_SMTP_TLS": "none",
                "WHITESPACE_ALERT_SMTP_USER": SMTP_USER, "WHITESPACE_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
                "WHITESPACE_ALERT_EMAIL_FROM": "etl@example.test", "WHITESPACE_ALERT_EMAIL_TO": "team@example.test"}

    def texts(self) -> list[str]:
        """Everything received, e-mails and webhook posts, as text."""
        return self.mailbox.messages + [json.dumps(p) for p in self.webhook.posts]
