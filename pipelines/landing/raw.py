"""The raw landing: every API answer kept on disk exactly as received, with a manifest beside it.

Layout: ``<raw>/<MU id>/<endpoint slug>/<UTC stamp>.json`` with ``.meta.json`` beside each body;
the corporate list under ``_``; contracts and line sets in ``<MU id>/risk_details/`` (JSON lines)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from pipelines.client import Download, WhitespaceError, documents, endpoints

DETAILS_FOLDER = "risk_details"
MI_FOLDER = "mireport"
"""Where an organisation's MI report answers (``POST /mireport/prepare``) are landed, one file per answer."""
"""Where an organisation's contracts and line sets are landed, and the index of what was fetched."""


class NothingLanded(WhitespaceError):
    """A load found no landed answer to load."""


@dataclasses.dataclass(frozen=True)
class Landed:
    """One landed answer: the body file and what is known about it."""

    path: Path
    user_id: str
    endpoint: str
    fetched_at: dt.datetime
    sha256: str
    bytes: int
    items: int
    company_id: str = ""
    set_aside: tuple[documents.SetAside, ...] = ()
    """Elements of the answer the loaders do not take (quarantined), found as it was landed."""

    def manifest(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = self.path.name
        d["fetched_at"] = self.fetched_at.isoformat()
        if not self.set_aside:
            del d["set_aside"]
        return d

    @property
    def accepted(self) -> int:
        """The elements the loaders take."""
        return self.items - len(self.set_aside)

    @property
    def read_option(self) -> str:
        """What a ``read_json_objects`` of this answer needs to get past its largest element set aside."""
        return read_option(max((a.chars for a in self.set_aside), default=0))

    def relative_to(self, root: Path) -> str:
        return self.path.relative_to(root).as_posix()


def _slug(endpoint: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", endpoint).strip("_") or "root"


def organisation_dir(raw_dir: Path, user_id: str) -> Path:
    """An organisation's folder of the landing (``_``: the login-less corporate list). Only an MU id in the
    platform's grammar names one (``documents.InvalidId`` otherwise): no id can name a path outside it."""
    return Path(raw_dir) / (documents.check_user_id(user_id) or "_")


def landing_path(raw_dir: Path, user_id: str, endpoint: str, fetched_at: dt.datetime, tag: str = "") -> Path:
    stamp = fetched_at.strftime("%Y%m%dT%H%M%S%fZ")
    return organisation_dir(raw_dir, user_id) / _slug(endpoint) / f"{stamp}{'-' + _slug(tag) if tag else ''}.json"


def download_risk_list(client, raw_dir: Path, user_id: str) -> Download:
    """Streams ``client``'s risk list to its landing path (a ``Download``; ``record`` writes its manifest)."""
    dest = landing_path(raw_dir, user_id, endpoints.RISKS, dt.datetime.now(dt.UTC))
    return client.download_risks(dest)


def download_corporate(client, raw_dir: Path) -> Download:
    """Streams the corporate list (``/shared/corporate``) to its landing path (``record`` writes its manifest)."""
    return client.download_corporate(landing_path(raw_dir, "", endpoints.CORPORATE, dt.datetime.now(dt.UTC)))


def record(download: Download, raw_dir: Path, user_id: str, endpoint: str, company_id: str = "") -> Landed:
    """Writes the manifest of a body the client already streamed to its landing path."""
    landed = Landed(download.path, user_id, endpoint, download.fetched_at, download.sha256, download.size,
                    download.items, company_id, download.set_aside)
    write_manifest(landed)
    return landed


def write_atomically(path: Path, text: str, durable: bool = False) -> None:
    """Writes ``path`` whole or not at all: a temporary file of its own beside it (two processes
    writing the same file never share one), then a rename over it. ``durable``: on disk (the file
    and the rename) before this returns, for what cannot be asked for again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


READ_LIMIT = 16 << 20
"""DuckDB's default ``maximum_object_size``: one element of a JSON file larger than about twice this stops
``read_json_objects`` ("maximum_object_size exceeded")."""


def read_option(largest: int) -> str:
    """The option a ``read_json_objects`` call needs for a file whose largest element is ``largest``
    characters: none up to DuckDB's default (a larger limit costs memory on every read), else just enough."""
    return f", maximum_object_size = {largest + 1024}" if largest > READ_LIMIT else ""


def read_objects(conn, sql: str, params: list, paths: list[Path] | Path) -> list[tuple]:
    """Runs ``sql``, whose ``read_json_objects`` calls end in ``{options}``, over landed files: with DuckDB's
    default limit first, and only if one element of theirs exceeds it, again with the largest file's size
    (no element is larger than its file). One document of hundreds of MB never stops a read for good."""
    try:
        return conn.execute(sql.format(options=""), params).fetchall()
    except duckdb.InvalidInputException as exc:
        if "maximum_object_size" not in str(exc):
            raise
    largest = max(Path(p).stat().st_size for p in ([paths] if isinstance(paths, Path | str) else paths))
    return conn.execute(sql.format(options=read_option(max(largest, READ_LIMIT + 1))), params).fetchall()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (made if missing) until the block ends, across processes: a
    CLI sync and a scheduled run of the same organisation take their turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_manifest(landed: Landed) -> None:
    write_atomically(landed.path.with_suffix(".meta.json"), json.dumps(landed.manifest(), indent=1))


def read_manifest(meta: Path) -> Landed:
    d = json.loads(meta.read_text())
    return Landed(
        path=meta.with_name(d["path"]),
        user_id=d["user_id"],
        endpoint=d["endpoint"],
        fetched_at=dt.datetime.fromisoformat(d["fetched_at"]),
        sha256=d["sha256"],
        bytes=d["bytes"],
        items=d["items"],
        company_id=d.get("company_id", ""),
        set_aside=tuple(documents.SetAside(**a) for a in d.get("set_aside", ())),
    )


def latest(raw_dir: Path, endpoint: str) -> dict[str, Landed]:
    """The newest landed answer of ``endpoint`` per MU id (what a rebuild from raw loads)."""
    out: dict[str, Landed] = {}
    for meta in sorted(Path(raw_dir).glob(f"*/{_slug(endpoint)}/*.meta.json")):
        landed = read_manifest(meta)
        if landed.path.exists():
            out[landed.user_id] = landed  # sorted by time stamp: the last one wins
    return out


def landed_before(raw_dir: Path, endpoint: str, landed: Landed) -> Landed | None:
    """The answer of the same endpoint and organisation landed just before ``landed``, if any."""
    folder = landed.path.parent
    earlier = [m for m in sorted(folder.glob("*.meta.json")) if m.name < landed.path.with_suffix(".meta.json").name]
    for meta in reversed(earlier):
        before = read_manifest(meta)
        if before.path.exists() and before.endpoint == endpoint:
            return before
    return None


def require_latest(raw_dir: Path, endpoint: str, user_id: str) -> Landed:
    """The newest landed answer of ``endpoint`` for ``user_id`` (``""``: the corporate list), or NothingLanded."""
    landed = latest(raw_dir, endpoint).get(user_id)
    if landed is None:
        whose = f" for {user_id}" if user_id else ""
        raise NothingLanded(f"No landed {endpoint} answer{whose} in {raw_dir}: run its extraction first "
                            "(raw_risks / raw_corporate, or 'whitespace-etl sync').")
    return landed


def details_dir(raw_dir: Path, user_id: str) -> Path:
    """An organisation's landed contracts and line sets (``*.jsonl``) and their index."""
    return organisation_dir(raw_dir, user_id) / DETAILS_FOLDER


def reusable(raw_dir: Path, user_id: str, endpoint: str, sha256: str) -> Landed | None:
    """The newest landed answer, if it is the one with ``sha256``. None otherwise (not asked for, or
    another sync has landed a newer answer since): the caller then fetches the answer itself."""
    if not sha256:
        return None
    landed = latest(raw_dir, endpoint).get(user_id)
    return landed if landed is not None and landed.sha256 == sha256 and landed.path.exists() else None


def mi_dir(raw_dir: Path, user_id: str) -> Path:
    """An organisation's landed MI report answers (``*.json``, oldest first by name)."""
    return organisation_dir(raw_dir, user_id) / MI_FOLDER
