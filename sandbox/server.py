"""The sandbox HTTP server: Sync Gateway under ``/sync``, the API under ``/api``, one root.

Admin calls (not part of the platform) live under ``/_sandbox``: ``POST /_sandbox/faults``,
``POST /_sandbox/advance``, ``POST /_sandbox/revoke``, ``POST /_sandbox/reset`` and
``GET /_sandbox/stats``.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox import documents
from sandbox.faults import Faults, FaultState
from sandbox.tokens import TokenIssuer
from sandbox.world import BUCKET, MEMBERSHIP_BY_MU, USERS, World

log = logging.getLogger(__name__)

INVALID_WSAUTH = {"error": True, "reason": "Invalid WSAUTH"}
INVALID_USERID = {"reason": "Invalid WSAUTH: Valid UserID must be supplied", "error": True}
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response.</p></body></html>\n"
)
BAD_VALUES = {
    "line": "123456789012.5",
    "defined_premium": "USD 98765432109876543210.55",
    "mi": (("premium", "98765432109876543210.55"), ("premium", "EUR 1,250"), ("brokerage", "12345678901.5%")),
}
"""What the ``bad_values`` fault sends (``sandbox/faults.py``)."""
DEEP_VALUE = "[" * 3000 + "]" * 3000
"""A value nested 3,000 levels deep (the ``hostile_documents`` fault)."""
HOSTILE_ELEMENTS = ("42", '{"umr":"B0999NOID","Status":"FirmOrder"}',
                    '{"id":"IC../../../escaped::FO","rev":"1-0","Status":"FirmOrder"}')
"""What the ``hostile_documents`` fault appends to every ``/api/risks`` answer: not an object, no id, an id
outside the platform's grammar."""
SUMMARY_PAGE = 60
STREAM_BATCH = 500


class Sandbox:
    """Everything the handlers share: the world, the token issuer, faults and counters."""

    def __init__(self, seed: int = 1, scale: float = 1.0, token_lifetime: float = 3600.0, faults: Faults | None = None,
                 state_file: Path | None = None):
        self.world = World(seed=seed, scale=scale)
        self.state_file = state_file
        """Where the platform's own memory (the MI report cursors) is kept between sandbox processes."""
        self.previous_world = self.world
        self.departed: set[str] = set()
        """Memberships (MU ids) that left their organisation: the login no longer acts for them."""
        """The world before the last advance: what a lagging organisation's view still shows."""
        self.tokens = TokenIssuer(issuer="whitespace-sandbox", lifetime=token_lifetime)
        self.faults = FaultState(faults)
        self.lock = threading.Lock()  # one world change at a time; readers keep the world they took
        self.mi_cursor: dict[str, dt.datetime] = {}
        """Per login (refresh token's user): when ``/mireport/fetch`` was last called. One cursor for all
        of a login's organisations: the least forgiving reading of "changed since the last fetch"."""
        self.mi_prepared: dict[tuple[str, str], list] = {}
        if state_file is not None and state_file.exists():
            saved = json.loads(state_file.read_text())
            self.mi_cursor = {k: dt.datetime.fromisoformat(v) for k, v in saved.get("mi_cursor", {}).items()}
        self.stats: collections.Counter[str] = collections.Counter()
        self._stats_lock = threading.Lock()

    def count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def stats_snapshot(self) -> dict[str, Any]:
        with self._stats_lock:
            out: dict[str, Any] = dict(self.stats)
        out["refreshes"] = self.tokens.refreshes
        out["tick"] = self.world.tick
        return out


def endpoint_of(path: str) -> str:
    """A stable name per endpoint for the request counters (ids replaced by placeholders)."""
    path = re.sub(r"IC[0-9A-F-]{36}(::[^/]*)?", "{id}", path)
    return re.sub(r"^/sync/[^/]+/", "/sync/{bucket}/", path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms ACK stalls
    server_version = "WhitespaceSandbox/1.0"
    sandbox: Sandbox  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # The default logs the request line, query string (and so the refresh token) included.
        log.debug("%s %s", self.command, urlsplit(self.path).path)

    # -- plumbing -------------------------------------------------------------------------
    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_body(status, body, "application/json; charset=utf-8", headers)

    def send_body(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        if self._fault == "truncate" and status == 200:
            body = body[: len(body) // 2]
        if self._fault == "empty" and status == 200:
            body = b""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_stream(self, chunks) -> None:
        """A JSON array written as it is generated, with chunked transfer encoding."""
        if self._fault in ("truncate", "empty"):  # faults need the whole body: build it
            return self.send_body(200, b"".join(chunks), "application/json; charset=utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        sb = self.sandbox
        url = urlsplit(self.path)
        path = unquote(url.path)
        self._fault = None
        if not path.startswith("/_sandbox"):
            sb.count(f"{self.command} {endpoint_of(path)}")
            f = sb.faults.faults
            if f.latency_ms:
                time.sleep(f.latency_ms / 1000.0)
            self._fault = sb.faults.take(path)
        fault = self._fault
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "hang":
            time.sleep(sb.faults.faults.hang_seconds)
        if fault == "rate_limit":
            return self.send_json(429, {"error": "Too Many Requests", "reason": "rate limited"},
                                  {"Retry-After": sb.faults.faults.retry_after})
        if fault == "error_burst":
            status = sb.faults.faults.error_status
            return self.send_json(status, {"error": "Service Unavailable" if status == 503 else "Server Error",
                                           "reason": "temporary failure"})
        if fault == "html":
            return self.send_body(sb.faults.faults.html_status, HTML_PAGE, "text/html")
        try:
            if path.startswith("/_sandbox/"):
                return self._admin(path)
            if path.startswith("/sync/"):
                return self._sync(path, parse_qs(url.query))
            if path.startswith("/api/"):
                return self._api(path[4:], parse_qs(url.query))
            if path in ("/mireport/prepare", "/mireport/fetch") and self.command == "POST":
                return self._mireport(path)
            self.send_json(404, {"error": "not_found", "reason": "no such path"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a sandbox bug must not look like a network fault
            log.exception("sandbox error on %s", path)
            self.send_json(500, {"error": True, "reason": f"sandbox error: {type(exc).__name__}"})

    # -- Sync Gateway -------------------------------------------------------------------------
    def _sync(self, path: str, query: dict[str, list[str]]) -> None:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[2] != "_oidc_refresh":
            return self.send_json(404, {"error": "not_found", "reason": "missing"})
        if parts[1] != BUCKET:  # Sync Gateway's answer for a database it does not have
            return self.send_json(404, {"error": "not_found", "reason": f'no such database "{parts[1]}"'})
        token = (query.get("refresh_token") or [""])[0]
        if not token:
            return self.send_json(400, {"error": "Bad Request", "reason": "Refresh token must be present for oidc refresh"})
        user = self.sandbox.tokens.user_for_refresh(token)
        if user is None:
            if self.sandbox.faults.faults.legacy_refresh_errors:
                return self.send_json(401, {"error": "Unauthorized", "reason": "Unable to refresh token."})
            return self.send_json(500, {"error": "Internal Server Error", "reason": "Unable to refresh token."})
        self.send_json(200, self.sandbox.tokens.issue(user, self.sandbox.faults.faults.token_dies_after))

    # -- API ------------------------------------------------------------------------------------
    def _caller(self, needs_user_id: bool = True):
        """(user, membership) of the request, or None after answering 401."""
        auth = self.headers.get("Authorization", "")
        name = self.sandbox.tokens.check(auth[7:].strip()) if auth.startswith("Bearer ") else None
        user = next((u for u in USERS if u.name == name), None)
        if user is None:
            self.send_json(401, INVALID_WSAUTH)
            return None
        if not needs_user_id:
            return user, None
        mu = (self.headers.get("UserID") or "").strip()
        membership = next((m for m in user.memberships if m.user_id == mu and mu not in self.sandbox.departed), None)
        if membership is None and (mu or user.is_sumo):
            self.send_json(401, INVALID_USERID)
            return None
        return user, membership or user.memberships[0]

    def _api(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/version":
            return self.send_json(200, documents.VERSION)
        caller = self._caller(needs_user_id=path != "/shared/corporate")
        if caller is None:
            return None
        _user, m = caller
        world = self.sandbox.world
        if path == "/shared/corporate":
            body = documents.corporate(frozenset(self.sandbox.departed))
            if self.sandbox.faults.faults.corporate == "empty":
                body = []
            elif self.sandbox.faults.faults.corporate == "keyless":
                body.append({"name": "Nameless Holdings", "role": "broker", "members": [], "teams": []})
                body[0]["teams"].append({"teamId": "LOST", "name": "Lost team", "isInactive": False})
                body[0]["members"].append({"name": "No Id", "currentState": "Live", "teams": []})
                body.append({**body[1], "name": body[1]["name"] + " (again)"})  # a company, and its members, twice
            if self.sandbox.faults.faults.hostile_member:
                body[0]["members"].append({"name": USERS[0].name, "uniqueID": self.sandbox.faults.faults.hostile_member,
                                           "currentState": "Live", "teams": []})
            padding = self.sandbox.faults.faults.corporate_padding_mb
            if padding:  # streamed a MB at a time: the sandbox holds no more of it than the client should
                text = json.dumps(body, separators=(",", ":"))
                megabyte = b"x" * 1_000_000

                def chunks():
                    yield (text[:-1] + ',{"companyId":"PADDING","name":"Padding Ltd","notes":"').encode()
                    for _ in range(padding):
                        yield megabyte
                    yield b'"}]'

                return self.send_stream(chunks())
            return self.send_json(200, body)
        if path == "/user/myDetails":
            return self.send_json(200, documents.my_details(m.user_id))
        if path == "/risks":
            return self._risks(m.company_id)
        if path == "/summary":
            return self._summary(m, query)
        if path == "/activities/filter" and self.command == "POST":
            return self._activities_filter(m.company_id)
        match = re.fullmatch(r"/activities/(IC[^/:]+)/full", path)
        if match:
            root = world.find_root(match.group(1))
            if root is None or not world.visible_to(root.index, m.company_id):
                return self.send_json(400, {"error": True, "reason": "Risk not found"})
            return self.send_json(200, documents.activities(root))
        match = re.fullmatch(r"/risks/root/(IC[^/:]+)", path) or re.fullmatch(r"/lines/(IC[^/:]+)/combinedSets", path)
        if match:
            root = world.find_root(match.group(1))
            if root is None or not world.visible_to(root.index, m.company_id):
                return self.send_json(400, {"error": True, "reason": "Risk not found"})
            body = documents.root_instances(root) if path.startswith("/risks/") else documents.combined_sets(root)
            faults = self.sandbox.faults.faults
            if faults.bad_values and root.index % 7 == 0 and not path.startswith("/risks/"):
                for imp in [i for s in body for ln in s["contents"] for i in ln["impressions"]][:1]:
                    imp["writtenLinePercentageString"] = BAD_VALUES["line"]
            comma, renamed = faults.line_pct_form == "comma", faults.contract_drift == "renamed"
            if (comma or renamed) and not path.startswith("/risks/"):  # line-set faults, one pass over impressions
                for imp in (i for s in body for ln in s["contents"] for i in ln["impressions"]):
                    if comma:
                        for key in ("writtenLinePercentageString", "signedLinePercentageString"):
                            if key in imp:
                                imp[key] = imp[key].replace(".", ",")
                    if renamed:
                        imp["writtenLine"] = imp.pop("writtenLinePercentageString")
            return self.send_json(200, body)
        match = re.fullmatch(r"/v23\.09/data/(IC[^/]+?)(?:/tagset/([^/]+))?", path)
        if match:
            root_id, _, suffix = match.group(1).partition("::")
            root = world.find_root(root_id)
            if root is None or not world.visible_to(root.index, m.company_id) or (suffix and suffix not in root.suffixes()):
                return self.send_json(400, {"error": True, "reason": "Risk not found"})
            if match.group(2) not in (None, "ACORDGPM"):
                return self.send_json(400, {"error": True, "reason": f"Unknown tagset {match.group(2)}"})
            body = documents.defined_data(root, suffix or root.suffixes()[-1], m.user_id, world.now, match.group(2))
            if self.sandbox.faults.faults.bad_values and root.index % 7 == 0:
                for entry in body["definedData"]:
                    if entry["tag"] == "Premium_Amount":
                        entry["value"] = BAD_VALUES["defined_premium"]
            return self.send_json(200, body)
        match = re.fullmatch(r"/risks/(IC[^/]+)", path)
        if match:
            root_id, _, suffix = match.group(1).partition("::")
            root = world.find_root(root_id)
            if root is None or not world.visible_to(root.index, m.company_id) or suffix not in root.suffixes():
                return self.send_json(400, {"error": True, "reason": "Risk not found"})
            body = documents.placing(root, suffix)
            if self.sandbox.faults.faults.contract_drift == "renamed":
                body["control"]["placingStatus"] = body["control"].pop("status")
            if self.sandbox.faults.faults.nul_text and root.index % 11 == 0:
                body["control"]["insuredName"] += "\x00"
            if self.sandbox.faults.faults.hostile_documents and root.index % 13 == 0:
                body = [body]  # a contract that is not a JSON object
            return self.send_json(200, body)
        self.send_json(404, {"error": True, "reason": "Unknown API path"})

    def _mireport(self, path: str) -> None:
        """``POST /mireport/prepare``: a row per placement of the caller's organisation changed since the
        login last called ``/mireport/fetch`` (every one before the first fetch). ``POST /mireport/fetch``:
        the prepared rows as tall CSV; the login's cursor moves to now, so a change made between the
        prepare and the fetch is never reported."""
        caller = self._caller()
        if caller is None:
            return None
        user, m = caller
        sb = self.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.send_json(400, {"error": True, "reason": "the body must be JSON"})
        world = sb.world
        if path.endswith("/prepare"):
            since = sb.mi_cursor.get(user.name)
            rows = [documents.mi_row(world.root(i), m.company_id, world.now, sb.faults.faults.status_display)
                    for i in world.root_indexes(m.company_id) if since is None or world.root(i).changed_at > since]
            sb.mi_prepared[(user.name, m.user_id)] = rows
            if sb.faults.faults.bad_values:
                for row, (key, value) in zip(rows, BAD_VALUES["mi"], strict=False):
                    row.update({key: value, **({"premiumCCY": "USD"} if value.startswith("EUR") else {})})
            if sb.faults.faults.nul_text and rows:
                rows[0] = {**rows[0], "insured": f"{rows[0]['insured']}\x00 Ltd"}
            rootless = sb.faults.faults.mi_rows_without_root
            answer = [{k: v for k, v in row.items() if k != "rootID"} if n < rootless else row
                      for n, row in enumerate(rows)]
            if not (sb.faults.faults.hostile_documents and answer):
                return self.send_json(200, answer)
            text = json.dumps(answer, separators=(",", ":"))  # the first row nested too deep: only as text
            return self.send_body(200, ("[" + text[1:].replace("{", '{"notes":' + DEEP_VALUE + ",", 1)).encode(),
                                  "application/json")
        if (body.get("format") or "csv").lower() != "csv":
            return self.send_json(400, {"error": True, "reason": "the sandbox serves format csv only"})
        with sb.lock:
            sb.mi_cursor[user.name] = world.now
            if sb.state_file is not None:
                sb.state_file.parent.mkdir(parents=True, exist_ok=True)
                sb.state_file.write_text(json.dumps({"mi_cursor": {k: v.isoformat() for k, v in sb.mi_cursor.items()}}))
        rows = sb.mi_prepared.pop((user.name, m.user_id), [])
        return self.send_body(200, documents.mi_csv(rows).encode(), "text/csv; charset=utf-8",
                              {"Content-Disposition": f'attachment; filename="{body.get("filename") or "MIREPORT.csv"}"'})

    def _activities_filter(self, company_id: str) -> None:
        """``POST /api/activities/filter``: the caller's activities of one kind, in a time window
        (``from``: ``YYYY-MM-DD hh:mm:ss`` or a duration back from now such as ``18 hours``; ``to``)."""
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            name = body["activity"]
            world = self.sandbox.world
            start = _when(body.get("from"), world.now) if body.get("from") else None
            end = _when(body.get("to"), world.now) if body.get("to") else None
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, {"error": True, "reason": "activity is required; from/to: "
                                                                "YYYY-MM-DD hh:mm:ss, or from: 'N minutes|hours|days'"})
        found = []
        for index in ([] if self.sandbox.faults.faults.activities_empty else world.root_indexes(company_id)):
            for act in documents.activities(world.root(index)):
                at = dt.datetime.strptime(act["createdAt"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
                if act["activity"] == name and (start is None or at >= start) and (end is None or at <= end):
                    found.append(act)
        self.send_json(200, found)

    def _risks(self, company_id: str) -> None:
        faults = self.sandbox.faults.faults
        if faults.empty_list_for == company_id:
            return self.send_json(200, [])
        drift, dupes = faults.drift, faults.duplicate_rows

        def chunks():
            first, batch, repeated = True, [], []
            lagging = faults.stale_list_for == company_id  # this organisation's view is a tick behind
            world = self.sandbox.previous_world if lagging else self.sandbox.world
            hostile, nul = faults.hostile_documents, faults.nul_text
            for row in documents.risk_rows(world, company_id, drift, faults.status_display):
                if len(repeated) < dupes:
                    repeated.append(row)
                text = json.dumps(row, separators=(",", ":"))
                if nul and "InsuredName" in row:
                    row, nul = {**row, "InsuredName": row["InsuredName"] + "\x00 Ltd"}, False
                    text = json.dumps(row, separators=(",", ":"))
                if hostile:  # the first row carries a field nested too deep for most parsers
                    text, hostile = text[:-1] + ',"notes":' + DEEP_VALUE + "}", False
                batch.append(text)
                if len(batch) >= STREAM_BATCH:
                    yield (b"[" if first else b",") + ",".join(batch).encode()
                    first, batch = False, []
            batch.extend(json.dumps(r, separators=(",", ":")) for r in repeated)
            if faults.hostile_documents:
                batch.extend(HOSTILE_ELEMENTS)
            tail = ",".join(batch).encode()
            yield (b"[" if first else (b"," if tail else b"")) + tail + b"]"

        self.send_stream(chunks())

    def _summary(self, m, query: dict[str, list[str]]) -> None:
        last = (query.get("last") or [""])[0]
        since = (query.get("from") or [""])[0]
        world = self.sandbox.world
        roots = [world.root(i) for i in world.root_indexes(m.company_id)]
        roots.sort(key=lambda r: (r.updated_at, r.root_id), reverse=True)
        start = 0
        if last:
            start = next((k + 1 for k, r in enumerate(roots) if r.root_id == last), len(roots))
        elif since:
            since_key = since.replace("T", " ")[:19]
            start = next((k for k, r in enumerate(roots) if documents.stamp(r.updated_at) < since_key), len(roots))
        channel = m.teams[0]
        self.send_json(200, [documents.summary(r, channel) for r in roots[start : start + SUMMARY_PAGE]])

    # -- admin ------------------------------------------------------------------------------
    def _admin(self, path: str) -> None:
        sb = self.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        if path == "/_sandbox/stats":
            return self.send_json(200, sb.stats_snapshot())
        if path == "/_sandbox/faults":
            try:
                return self.send_json(200, sb.faults.set(body))
            except (ValueError, TypeError) as exc:
                return self.send_json(400, {"error": True, "reason": str(exc)})
        if path == "/_sandbox/advance":
            with sb.lock:
                sb.previous_world = sb.world
                sb.world = sb.world.advanced(
                    int(body.get("ticks", 1)),
                    changed_fraction=float(body.get("changed_fraction", 0.05)),
                    new_roots=int(body.get("new_roots", 10)),
                    removed_fraction=float(body.get("removed_fraction", 0.0)),
                    lines_changed_fraction=float(body.get("lines_changed_fraction", 0.0)),
                )
            return self.send_json(200, {"tick": sb.world.tick, "now": documents.stamp(sb.world.now)})
        if path == "/_sandbox/leave":
            sb.departed.add(body.get("user_id", ""))
            return self.send_json(200, {"departed": sorted(sb.departed)})
        if path == "/_sandbox/revoke":
            sb.tokens.revoke(body.get("refresh_token", ""))
            return self.send_json(200, {"revoked": True})
        if path == "/_sandbox/reset":
            sb.faults.reset()
            sb.tokens.unrevoke_all()
            with sb._stats_lock:
                sb.stats.clear()
            return self.send_json(200, {"reset": True})
        self.send_json(404, {"error": True, "reason": "unknown admin call"})


def _when(text: str, now: dt.datetime) -> dt.datetime:
    """A filter bound: ``YYYY-MM-DD hh:mm:ss`` (UTC), or a duration back from ``now``."""
    m = re.fullmatch(r"\s*(\d+)\s*(minute|hour|day)s?\s*", text)
    if m:
        return now - dt.timedelta(**{f"{m.group(2)}s": int(m.group(1))})
    return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)


def membership_company(user_id: str) -> str:
    return MEMBERSHIP_BY_MU[user_id][1].company_id
