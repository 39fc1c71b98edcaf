"""Contract, market-line and Defined Data extraction, incremental by root.

A root is fetched again only when the ``(id, rev)`` set of its documents changed since the last
successful fetch for this organisation. What was fetched is landed first (one JSON-lines file per
run, each answer kept as its exact text); the per-organisation index that says "fetched" is
written only after that file is durable, and the warehouse records which files it has loaded, so
a crash at any point costs a re-fetch or a re-load, never a skipped change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import duckdb

from pipelines.client import WhitespaceClient, documents
from pipelines.extract import feed
from pipelines.landing.raw import (
    DETAILS_FOLDER,
    Landed,
    details_dir,
    landing_path,
    locked,
    read_objects,
    write_atomically,
)

INDEX = "index.json"
LOCK = ".fetch.lock"
"""Held while an organisation's contracts and lines are fetched and its index and feed cursor written."""
CALLS_PER_ROOT = 3
"""A changed root costs its contract, its line sets and its Defined Data."""


@dataclasses.dataclass
class Plan:
    needed: list[tuple[str, str, str]]  # (root_id, lead risk id, signature)
    unchanged: int
    gone: list[str]


@dataclasses.dataclass
class Fetched:
    path: Path | None
    fetched: int
    failed: dict[str, str]
    requests: int
    plan: Plan


def _rank(risk_id: str) -> tuple:
    """Which document of a root holds its contract: endorsements, then the firm order, then the latest quote."""
    suffix = risk_id.partition("::")[2]
    if re.match(r"^FO::EN\d+$", suffix):
        return (3, int(suffix[6:]))
    if suffix == "FO":
        return (2, 0)
    m = re.match(r"^QR(\d+)$", suffix)
    return (1, int(m.group(1))) if m else (0, 0)


def roots_in_list(list_path: Path) -> dict[str, tuple[str, str]]:
    """root id -> (lead risk id, signature of all its documents' revisions), from a landed risk list."""
    with duckdb.connect() as conn:
        rows = read_objects(
            conn,
            """SELECT coalesce(json->>'id', json->>'Id', json->>'ID'),
                      coalesce(json->>'rev', json->>'Rev', json->>'REV', '')
               FROM read_json_objects(?, format = 'array'{options})""",
            [str(list_path)], list_path)
    docs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for risk_id, rev in rows:
        if documents.is_risk_id(risk_id):  # an id outside the grammar never reaches a URL (its row is set aside)
            docs[risk_id.partition("::")[0]].append((risk_id, rev))
    out = {}
    for root, items in docs.items():
        items = sorted(set(items))
        lead = max(items, key=lambda item: _rank(item[0]))[0]
        out[root] = (lead, hashlib.sha1(json.dumps(items).encode()).hexdigest())
    return out


def index_path(raw_dir: Path, user_id: str) -> Path:
    return details_dir(raw_dir, user_id) / INDEX


def read_index(raw_dir: Path, user_id: str) -> dict[str, str]:
    path = index_path(raw_dir, user_id)
    return json.loads(path.read_text()) if path.exists() else {}


def plan(list_path: Path, index: dict[str, str], named: frozenset[str] = frozenset(), every: bool = False) -> Plan:
    """The roots to fetch: those whose documents' revisions changed (new ones included), those the
    activity feed ``named``, or ``every`` one (a full reconciliation)."""
    roots = roots_in_list(list_path)
    needed = [(root, lead, sig) for root, (lead, sig) in sorted(roots.items())
              if every or index.get(root) != sig or root in named]
    return Plan(needed=needed, unchanged=len(roots) - len(needed), gone=sorted(set(index) - set(roots)))


def fetch(client: WhitespaceClient, raw_dir: Path, list_landed: Landed, log=lambda *a: None, full: bool = False,
          reconcile_every: dt.timedelta | None = None) -> Fetched:
    """Fetches what changed for one organisation (revisions, the activity feed, a due reconciliation,
    or everything when ``full``), lands it, then advances that organisation's index and feed cursor.

    One fetch of an organisation at a time, whichever process runs it (a CLI sync and a scheduled run):
    the index and the cursor are read, and written back, under the organisation's lock. Two at once
    would each write back what it read: one could restore a signature the other had just dropped for a
    failed root, and that change would wait for the next reconciliation."""
    with locked(details_dir(raw_dir, list_landed.user_id) / LOCK):
        return _fetch(client, raw_dir, list_landed, log, full, reconcile_every)


def _fetch(client: WhitespaceClient, raw_dir: Path, list_landed: Landed, log, full: bool,
           reconcile_every: dt.timedelta | None) -> Fetched:
    user_id = list_landed.user_id
    index = read_index(raw_dir, user_id)
    state = feed.read_state(raw_dir, user_id)
    news = feed.read_feed(client, state, list_landed.path)
    every = full or state.reconcile_due(reconcile_every)
    work = plan(list_landed.path, index, news.roots, every)
    if not work.needed and not work.gone:
        feed.write_state(raw_dir, user_id, news.state)
        return Fetched(None, 0, {}, 0, work)

    def one(item: tuple[str, str, str]) -> tuple[str, str, str]:
        root, lead, _sig = item
        # a text that is not the JSON type it must be, or holds a NUL, fails here (the client says why): the
        # root's failure is recorded, reported (contracts_fetched), and it is asked for again next run
        return client.risk_text(lead), client.combined_sets_text(root), client.defined_data_text(lead)

    now = dt.datetime.now(dt.UTC)
    path = landing_path(raw_dir, user_id, DETAILS_FOLDER, now).with_suffix(".jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    failed: dict[str, str] = {}
    done = 0
    with open(tmp, "w", encoding="utf-8") as out:
        for n, (item, result, exc) in enumerate(client.fan_out(one, work.needed), start=1):
            root, lead, sig = item
            line = {"root_id": root, "risk_id": lead, "signature": sig, "fetched_at": now.isoformat()}
            if exc is None:
                line.update(contract=result[0], lines=result[1], defined_data=result[2], error=None)
                done += 1
            else:
                line.update(contract=None, lines=None, defined_data=None, error=f"{type(exc).__name__}: {exc}")
                failed[root] = line["error"]
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            if n % 500 == 0:
                log(f"{n} of {len(work.needed)} roots fetched")
        for root in work.gone:
            out.write(json.dumps({"root_id": root, "gone": True}) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    for root, _lead, sig in work.needed:
        if root in failed:
            index.pop(root, None)  # fetched again next run, whatever made it due (a revision, the feed)
        else:
            index[root] = sig
    for root in work.gone:
        index.pop(root, None)
    _write_json_atomically(index_path(raw_dir, user_id), index)
    if every:
        news = dataclasses.replace(news, state=dataclasses.replace(news.state, reconciled_at=now.isoformat()))
    feed.write_state(raw_dir, user_id, news.state)
    requests = CALLS_PER_ROOT * len(work.needed)
    return Fetched(path, done, failed, requests, work)


def _write_json_atomically(path: Path, payload) -> None:
    write_atomically(path, json.dumps(payload, sort_keys=True))
