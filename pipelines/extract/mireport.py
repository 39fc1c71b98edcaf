"""The MI report: one analytics row per placement, with premium, brokerage, limit and every
carrier's line, extracted without losing a change.

``POST $ROOT/mireport/prepare`` answers the rows changed since the last ``POST /mireport/fetch``;
the fetch moves that cursor on, on the platform's side. Whether the cursor is kept per organisation
(MU id) or per login is not documented, so the extraction is safe under both: it prepares every
organisation of the login and lands each answer durably (fsync'd) first, and only then fetches, once
per organisation that had rows. A kill before a file is landed leaves the cursor where it was (the
next prepare answers the same rows again); a kill after landing is harmless (the file waits to be
loaded, newest answer winning per placement); the load applies every landed file not loaded yet in
one transaction. One extraction per landing at a time (a file lock). What the API cannot give back,
a change made between a prepare and its fetch, the ``mi_report_current`` check makes visible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from pipelines.client import WhitespaceClient
from pipelines.client.jsonscan import scan_json_array
from pipelines.landing.raw import locked, mi_dir, write_atomically

LOCK = ".mireport.lock"


@dataclasses.dataclass
class MiExtract:
    rows: dict[str, int]
    """Rows each organisation's prepare answered."""
    landed: dict[str, Path]
    """Where each answer with rows was landed."""
    requests: int


def exclusive(raw_dir: Path):
    """One MI extraction at a time against a landing: two at once would each move the other's cursor."""
    return locked(Path(raw_dir) / LOCK)


def extract(client: WhitespaceClient, user_ids: list[str], raw_dir: Path, log=lambda *a: None) -> MiExtract:
    """Prepares and lands every organisation's changed MI rows, then moves the cursor of those that had some.

    The prepares go out at once (the client's ``max_concurrency`` at a time), each answer landed as it is
    taken, in the organisations' order; the fetches only once every answer is landed, also at once. The
    first error stops the extraction: answers not landed yet are prepared again next time (no fetch
    moved their cursor)."""
    rows: dict[str, int] = {}
    landed: dict[str, Path] = {}
    requests = 0
    with exclusive(raw_dir):
        for user_id, text in client.each(lambda u: client.for_user(u).mi_prepare_text(), user_ids):
            requests += 1
            try:  # counted without building the rows: one may nest deeper than Python's parser goes
                count = scan_json_array(text.encode())
            except ValueError:
                raise ValueError(f"POST /mireport/prepare answered {text[:60]!r}, not a list of rows") from None
            rows[user_id] = count
            if count:
                path = mi_dir(raw_dir, user_id) / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}.json"
                write_atomically(path, text, durable=True)
                landed[user_id] = path
                log(f"{user_id}: {count} MI rows landed")
        # only now may the platform forget what it answered
        for _user_id, _ in client.each(lambda u: client.for_user(u).mi_fetch(), list(landed)):
            requests += 1
    return MiExtract(rows, landed, requests)
