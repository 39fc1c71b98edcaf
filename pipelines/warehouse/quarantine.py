"""Documents set aside: what an answer held that the loaders do not take, recorded in ``quarantine``.

A document is set aside when it is not an object, has no id or one outside the platform's grammar,
nests too deep or is too large (``pipelines/client/documents.py``). It stays in the raw landing as
received; its row here says which answer held it and why; the ``*_quarantine`` checks fail while any
is recorded; everything else of the answer loads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb

from pipelines.client.documents import SetAside


def record(conn: duckdb.DuckDBPyConnection, user_id: str, endpoint: str, path: str, set_aside: Iterable[SetAside],
           now: dt.datetime, whole: bool) -> int:
    """Records ``set_aside`` (documents of the answer landed at ``path``) for the organisation and endpoint,
    keeping when each was first set aside. ``whole``: the answer is the platform's whole list (a risk
    list), so the organisation's rows of that endpoint become exactly these (a document the platform no
    longer sends, or sends fixed, leaves); otherwise they are added (the MI report sends a row once).
    Returns how many the answer held."""
    rows = list(set_aside)
    if not rows and not whole:
        return 0
    first = dict(conn.execute("SELECT digest, first_seen_at FROM quarantine WHERE user_id = ? AND endpoint = ?",
                              [user_id, endpoint]).fetchall())
    if whole:
        if first:
            conn.execute("DELETE FROM quarantine WHERE user_id = ? AND endpoint = ?", [user_id, endpoint])
    else:
        conn.execute("DELETE FROM quarantine WHERE user_id = ? AND endpoint = ? AND list_contains(?, digest)",
                     [user_id, endpoint, [r.digest for r in rows]])
    seen: set[str] = set()
    for r in rows:
        if r.digest in seen:  # the same text twice in one answer: one row, at its last place
            conn.execute("UPDATE quarantine SET position = ? WHERE user_id = ? AND endpoint = ? AND digest = ?",
                         [r.position, user_id, endpoint, r.digest])
            continue
        seen.add(r.digest)
        conn.execute(
            "INSERT INTO quarantine (user_id, endpoint, digest, document_id, reason, position, path, first_seen_at, "
            "last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [user_id, endpoint, r.digest, r.document_id, r.reason, r.position, path, first.get(r.digest, now), now])
    return len(rows)
