"""The Whitespace API client: plain Python over httpx, usable without Dagster."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from pipelines.client import documents, endpoints, retry
from pipelines.client.auth import BearerAuth, TokenManager
from pipelines.client.documents import InvalidId
from pipelines.client.errors import (
    AnswerTooLarge,
    ApiError,
    ConfigError,
    InvalidUserId,
    NotAuthorised,
    TransportError,
    stops_everything,
)
from pipelines.client.jsonscan import inspect_json_array, iter_json_array
from pipelines.client.settings import Settings
from pipelines.client.tls import tls

log = logging.getLogger("whitespace.client")
LOOK_AHEAD = 4
"""``fan_out`` starts at most this many times the concurrency of calls ahead of the one it yields: room
for a slow answer at the head without idle workers, and a bound on what is held."""

EXCERPT = 120
_TEXT = Path("<text>")  # marker: return the body's text rather than parse or land it
_BYTES = Path("<bytes>")  # marker: return the body as received, whatever it is (CSV)
_ROWS_TEXT = Path("<rows>")  # marker: the text of an array of rows, one of which may nest too deep to parse here
_DOCUMENT = {Path("<object>"): dict, Path("<array>"): list}
"""Markers: the text of one document a loader takes whole, and the JSON type it must be (a contract and its
defined data are objects, a root's line sets an array): one that is not, or that holds a NUL character
(which PostgreSQL cannot store), fails that request with the reason, and the root is fetched again next run."""
_OBJECT_TEXT, _ARRAY_TEXT = _DOCUMENT


@dataclasses.dataclass(frozen=True)
class Download:
    """A response body landed on disk exactly as received."""

    path: Path
    sha256: str
    size: int
    items: int
    """Elements of the JSON array (or 1 for an object)."""
    fetched_at: dt.datetime
    url: str
    set_aside: tuple[documents.SetAside, ...] = ()
    """Elements of the array the loaders must not take, and why (``jsonscan.inspect_json_array``)."""


@dataclasses.dataclass(frozen=True)
class _Landing:
    """Where an answer is landed, and what makes one of its elements one to set aside."""

    path: Path
    problem: Callable[[Any], tuple[str, object] | None] | None = None


@dataclasses.dataclass(frozen=True)
class Organisation:
    """An organisation the login acts for: its MU id is the partition key."""

    user_id: str
    company_id: str = ""
    company_name: str = ""


class WhitespaceClient:
    """One login. ``for_user(mu)`` gives a view bound to one organisation sharing token and pool."""

    def __init__(
        self,
        settings: Settings,
        policy: retry.RetryPolicy | None = None,
        _shared: tuple[httpx.Client, TokenManager, dict[str, InvalidUserId], threading.Semaphore] | None = None,
        user_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or retry.RetryPolicy()
        if _shared is None:
            tokens = TokenManager(settings.sync_url, settings.bucket, settings.refresh_token, settings.timeout,
                                  self.policy, token_variable=settings.token_variable)
            limits = httpx.Limits(max_connections=settings.max_concurrency * 2, max_keepalive_connections=settings.max_concurrency)
            http = httpx.Client(auth=BearerAuth(tokens), timeout=settings.timeout, limits=limits, verify=tls(),
                                headers={"Accept": "application/json", "User-Agent": "whitespace-etl/0.1"})
            _shared = (http, tokens, {}, threading.BoundedSemaphore(settings.max_concurrency))
        self._http, self.tokens, self._refused_user_ids, self._slots = _shared
        self.user_id = user_id

    def __repr__(self) -> str:
        return f"WhitespaceClient(api_url={self.settings.api_url!r}, user_id={self.user_id!r})"

    def for_user(self, user_id: str | None) -> WhitespaceClient:
        return WhitespaceClient(self.settings, self.policy, (self._http, self.tokens, self._refused_user_ids, self._slots),
                                user_id)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WhitespaceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the endpoints ----------------------------------------------------------------------------
    def version(self) -> dict:
        return self.get_json(endpoints.VERSION)

    def corporate(self) -> list[dict]:
        """``GET /api/shared/corporate`` parsed in memory (small answers); ``download_corporate`` streams it."""
        return self.get_json(endpoints.CORPORATE, send_user_id=False)

    def download_corporate(self, dest: Path) -> Download:
        """``GET /api/shared/corporate`` streamed to ``dest`` as received: memory stays flat whatever its size."""
        return self._request(endpoints.CORPORATE, None, _Landing(Path(dest)), False)

    def my_details(self) -> dict:
        return self.get_json(endpoints.MY_DETAILS)

    def risks(self) -> list[dict]:
        """``GET /api/risks`` parsed in memory (small lists); use ``download_risks`` for large ones."""
        return self.get_json(endpoints.RISKS)

    def download_risks(self, dest: Path) -> Download:
        """``GET /api/risks`` streamed to ``dest``; its elements the loader cannot take are named in the
        answer's ``set_aside`` (not an object, no id, an id outside the grammar, too deep or too large)."""
        return self.download(endpoints.RISKS, dest, problem=documents.risk_list_problem)

    def risk_text(self, risk_id: str) -> str:
        """``GET /api/risks/{riskID}`` as received (a JSON object)."""
        return self._request(endpoints.RISK.format(riskID=risk_id), None, _OBJECT_TEXT, True)

    def combined_sets_text(self, root_id: str) -> str:
        """``GET /api/lines/{rootID}/combinedSets`` as received (a JSON array)."""
        return self._request(endpoints.COMBINED_SETS.format(rootID=root_id), None, _ARRAY_TEXT, True)

    def defined_data_text(self, risk_id: str) -> str:
        """``GET /api/v23.09/data/{riskID}`` (the contract's tagged values, default tagset) as received (an object)."""
        return self._request(endpoints.DEFINED_DATA.format(riskID=risk_id), None, _OBJECT_TEXT, True)

    def mi_prepare_text(self) -> str:
        """``POST $ROOT/mireport/prepare``: this organisation's MI rows changed since the last fetch, as received."""
        return self._request(endpoints.MI_PREPARE, None, _ROWS_TEXT, True, {}, base=self.root_url)

    def mi_fetch(self) -> bytes:
        """``POST $ROOT/mireport/fetch`` (tall CSV): what was prepared. The platform's "changed since"
        cursor moves on with this call, so call it only once the prepared rows are landed."""
        body = {"filename": "MIREPORT.csv", "layout": "tall", "format": "csv"}
        return self._request(endpoints.MI_FETCH, None, _BYTES, True, body, base=self.root_url)

    @property
    def root_url(self) -> str:
        """``$ROOT``: the MI report runs beside the API, at ``$ROOT/mireport``, not under ``$ROOT/api``."""
        api = self.settings.api_url.rstrip("/")
        if not api.endswith("/api"):
            raise ConfigError(f"WHITESPACE_API_URL must end in /api ($ROOT/api): the MI report is read from "
                              f"$ROOT/mireport, and {api!r} names no $ROOT.")
        return api[: -len("/api")]

    def activities(self, activity: str, since: str | None = None) -> list[dict]:
        """``POST /api/activities/filter``: this organisation's activities of one kind, since ``since``
        (``YYYY-MM-DD hh:mm:ss`` in the platform's clock) when given."""
        body = {"activity": activity, **({"from": since} if since else {})}
        return self._request(endpoints.ACTIVITIES_FILTER, None, None, True, body)

    def fan_out(self, fn: Callable[[str], Any], keys: Iterable[str]) -> Iterator[tuple[str, Any, Exception | None]]:
        """``fn(key)`` for every key, ``max_concurrency`` at a time, sharing one token; in key order.
        An error that every later call would meet too (a dead login) is raised, and the calls not
        yet started are cancelled; any other error is yielded with its key.

        At most ``LOOK_AHEAD`` times the concurrency of calls are started ahead of the one being
        yielded, and nothing is kept of a result once yielded: memory stays flat whatever the number
        of keys (submitting every call at once kept every answer until the last, about 8 KB a root:
        1.3 GB for the 140,000 roots of a 200,000-risk book)."""
        pool = ThreadPoolExecutor(max_workers=self.settings.max_concurrency, thread_name_prefix="whitespace")
        ahead: collections.deque[tuple[str, Future]] = collections.deque()
        pending = iter(keys)

        def submit(count: int) -> None:
            for key in itertools.islice(pending, count):
                ahead.append((key, pool.submit(fn, key)))

        try:
            submit(LOOK_AHEAD * self.settings.max_concurrency)
            while ahead:
                key, future = ahead.popleft()
                exc = future.exception()
                if exc is not None and stops_everything(exc):
                    raise exc
                result = None if exc else future.result()
                del future
                submit(1)
                yield key, result, exc
                del result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def each(self, fn: Callable[[str], Any], keys: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """``fan_out`` for work that stops at the first error: ``(key, fn(key))`` in key order, the first
        error raised (the calls under way finish; none starts after it)."""
        for key, result, exc in self.fan_out(fn, keys):
            if exc is not None:
                raise exc
            yield key, result

    # -- organisations (SUMO) -----------------------------------------------------------------
    def discover_organisations(self) -> list[Organisation]:
        """The organisations this login acts for: configured, ``myDetails``, or the corporate list."""
        if self.settings.user_ids:
            return [Organisation(mu) for mu in self.settings.user_ids]
        try:
            me = self.for_user(None).my_details()
            return _valid([Organisation(me.get("uniqueID"), me.get("companyId", ""), me.get("companyName", ""))],
                          endpoints.MY_DETAILS)
        except InvalidUserId:
            pass  # a SUMO login: look its memberships up by name
        name = (self.settings.user_name or "").strip()
        if not name:
            raise InvalidUserId(None, self._shown(endpoints.MY_DETAILS))
        with tempfile.TemporaryDirectory(prefix="whitespace-corporate-") as folder:  # one company held at a time
            answer = self.download_corporate(Path(folder) / "corporate.json").path
            found = [
                Organisation(member["uniqueID"], company.get("companyId", ""), company.get("name", ""))
                for company in iter_json_array(answer) if isinstance(company, dict)
                for member in company.get("members") or [] if isinstance(member, dict)
                if str(member.get("name", "")).strip().casefold() == name.casefold() and member.get("uniqueID")
            ]
        found = _valid(found, endpoints.CORPORATE)
        if not found:
            raise ConfigError(
                f"No member named {name!r} in /api/shared/corporate: check WHITESPACE_USER_NAME (as Whitespace "
                "spells it) or set WHITESPACE_USER_IDS to your MU ids."
            )
        return found

    # -- transport ----------------------------------------------------------------------------
    def _shown(self, path: str) -> str:
        return f"{self.settings.api_url.rstrip('/')}{path}"

    def get_json(self, path: str, params: dict | None = None, send_user_id: bool = True) -> Any:
        return self._request(path, params, None, send_user_id)

    def get_text(self, path: str, params: dict | None = None) -> str:
        """The answer's JSON text exactly as received (checked to be whole JSON), for lossless landing."""
        return self._request(path, params, _TEXT, True)

    def download(self, path: str, dest: Path, params: dict | None = None,
                 problem: Callable[[Any], tuple[str, object] | None] | None = None) -> Download:
        """Streams a JSON answer to ``dest`` as received (atomically), checking it is whole JSON. An array's
        elements that are too deep or too large, or that ``problem`` finds wrong, are named in its ``set_aside``."""
        return self._request(path, params, _Landing(Path(dest), problem), True)

    def _request(self, path: str, params: dict | None, dest: Path | None, send_user_id: bool,
                 body: dict | None = None, base: str | None = None) -> Any:
        """GET (or POST ``body``) with the retry policy; ``dest``: land the answer there. ``base``: a
        root other than the API's."""
        url = f"{base}{path}" if base else self._shown(path)
        headers = {"UserID": self.user_id} if (self.user_id and send_user_id) else {}
        if headers and self.user_id in self._refused_user_ids:  # refused once: never sent again
            raise self._refused_user_ids[self.user_id]
        method = "GET" if body is None else "POST"
        return retry.run(self.policy, lambda: self._once(method, url, params, headers, dest, body), f"{method} {url}")

    def _once(self, method: str, url: str, params: dict | None, headers: dict, dest: Path | None,
              body: dict | None) -> Any:
        try:
            return self._exchange(method, url, params, headers, dest, body)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
            raise TransportError(f"Request {kind} ({type(exc).__name__})", None, url, transient=True) from None

    def _exchange(self, method: str, url: str, params: dict | None, headers: dict, dest: Path | None,
                  body: dict | None) -> Any:
        # At most max_concurrency exchanges of this login at once, however many fan-outs are nested
        # (organisations at once, each fetching its roots at once); no slot is held between retries.
        with self._slots, self._http.stream(method, url, params=params, headers=headers, json=body) as response:
            status = response.status_code
            if status != 200:
                body = response.read()
                raise self._error(status, url, body, response.headers.get("Retry-After"))
            announced = response.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > self.settings.max_answer_bytes:
                raise AnswerTooLarge(self.settings.max_answer_bytes, int(announced), url)
            if dest is _BYTES:
                return self._read(response, url)
            if dest is None or dest is _TEXT or dest is _ROWS_TEXT or dest in _DOCUMENT:
                body = self._read(response, url)
                try:
                    parsed = json.loads(body)
                except RecursionError:  # deeper than Python's parser goes: the answer, or one row of it
                    if dest is not _ROWS_TEXT:
                        raise ApiError(f"The answer is nested deeper than {sys.getrecursionlimit():,} levels, so it "
                                       "is not loaded", status, url, _excerpt(body)) from None
                    if documents.depth(body.decode("utf-8", "replace"))[1] < 0:
                        raise ApiError("The answer is not valid JSON", status, url, _excerpt(body), transient=True) from None
                    parsed = None
                except ValueError:
                    raise ApiError("The answer is not valid JSON", status, url, _excerpt(body), transient=True) from None
                if dest in _DOCUMENT:
                    if not isinstance(parsed, _DOCUMENT[dest]):
                        kind = "object" if _DOCUMENT[dest] is dict else "array"
                        raise ApiError(f"The answer is not a JSON {kind} (a {type(parsed).__name__}), so it is not "
                                       "loaded", status, url, _excerpt(body))
                    if documents.NUL_ESCAPE.encode() in body and documents.has_nul(parsed):
                        raise ApiError(f"The answer {documents.NUL_REASON}, so it is not loaded", status, url)
                return parsed if dest is None else body.decode("utf-8")
            return self._land(response, url, dest)

    def _read(self, response: httpx.Response, url: str) -> bytes:
        """The body, read as it arrives: no more than ``max_answer_bytes`` of it is ever held."""
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.settings.max_answer_bytes:
                raise AnswerTooLarge(self.settings.max_answer_bytes, size, url)
            chunks.append(chunk)
        return b"".join(chunks)

    def _land(self, response: httpx.Response, url: str, landing: _Landing) -> Download:
        dest = landing.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    size += len(chunk)
                    if size > self.settings.max_answer_bytes:
                        raise AnswerTooLarge(self.settings.max_answer_bytes, size, url)
                    out.write(chunk)
            try:
                items, set_aside = _count_items(Path(tmp), landing.problem)
            except ValueError as exc:
                with open(tmp, "rb") as f:
                    head = f.read(EXCERPT)
                raise ApiError(f"The answer is not whole JSON ({exc})", 200, url, _excerpt(head), transient=True) from None
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Download(dest, digest.hexdigest(), size, items, dt.datetime.now(dt.UTC), url, tuple(set_aside))

    def _error(self, status: int, url: str, body: bytes, retry_after: str | None) -> ApiError:
        try:
            reason = str(json.loads(body).get("reason", ""))
        except (ValueError, AttributeError):
            reason = ""
        if status == 401 and "UserID" in reason:
            error = InvalidUserId(self.user_id, url)
            if self.user_id:
                self._refused_user_ids[self.user_id] = error
            return error
        if status == 401:
            return NotAuthorised("The API refused a freshly renewed token (Invalid WSAUTH)", status, url, _excerpt(body))
        transient = status in retry.RETRY_STATUSES
        message = f"The API answered {status}" + (f": {reason}" if reason else "")
        error = ApiError(message, status, url, _excerpt(body), transient=transient)
        error.retry_after = retry_after  # type: ignore[attr-defined]
        return error


_SAID: set = set()
_SAID_LOCK = threading.Lock()


def _once(what: object) -> bool:
    """True the first time this process is told ``what``: a warning repeated by every discovery of a run
    (the sync's, then its MI step's) is said once."""
    with _SAID_LOCK:
        if what in _SAID:
            return False
        _SAID.add(what)
        return True


def _valid(found: list[Organisation], where: str) -> list[Organisation]:
    """The organisations whose MU id is in the platform's grammar; each other one is named in one line
    and left out (an id from the platform becomes a folder of the landing and a header)."""
    kept = []
    for org in found:
        if documents.is_user_id(org.user_id):
            kept.append(org)
        elif _once(("refused MU id", org.user_id)):
            log.warning("%s named the MU id %s (company %s), which is outside the platform's id grammar: that "
                        "organisation is not synced; the others are.", where, documents.shown(org.user_id),
                        documents.shown(str(org.company_id)))
    if found and not kept:
        raise InvalidId("MU id", found[0].user_id)
    return kept


def _count_items(path: Path, problem=None) -> tuple[int, list[documents.SetAside]]:
    """Elements of a JSON array (checked one at a time), or 1 for any other JSON value; and the
    elements to set aside (``inspect_json_array``)."""
    with open(path, "rb") as f:
        is_array = f.read(4096).lstrip()[:1] == b"["
    if is_array:
        return inspect_json_array(path, problem)
    with open(path, "rb") as f:
        try:
            json.load(f)
        except RecursionError:
            raise ValueError(f"nested deeper than Python's parser goes ({sys.getrecursionlimit()} levels)") from None
    return 1, []


def _excerpt(body: bytes) -> str:
    return " ".join(body[:EXCERPT].decode("utf-8", "replace").split())
