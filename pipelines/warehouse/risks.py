"""Normalise one organisation's landed ``/api/risks`` answer into the warehouse, in one transaction.

DuckDB parses the landed file itself (``read_json_objects``), so no risk becomes a Python object:
the load is one bulk ``INSERT ... SELECT`` per table. Keys are matched case-insensitively by
looking at the keys actually present in the file; DuckDB reads a JSON array on one thread, so that
look runs beside the staging, on a second connection (``_inspect_and_stage``).

The API sends an organisation's whole list every time. When the warehouse already holds most of it,
one cheap pass (the MD5 of each element's text, looked up among the stored documents') picks out the
documents whose text changed, and only those are parsed and written: a *delta load*.
Its preconditions, and why each one holds, are in ``_delta_scan``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import duckdb

from models.tables import risks as risks_table
from pipelines.client import WhitespaceError, endpoints
from pipelines.landing.raw import Landed
from pipelines.warehouse import db, quarantine
from pipelines.warehouse.postgres import Scope

# warehouse column -> (API field, JSON types the field is expected to have)
FIELDS: dict[str, tuple[str, frozenset[str]]] = {
    "risk_id": ("id", frozenset({"VARCHAR"})),
    "rev": ("rev", frozenset({"VARCHAR"})),
    "doc_type": ("type", frozenset({"VARCHAR"})),
    "umr": ("umr", frozenset({"VARCHAR"})),
    "insured_name": ("InsuredName", frozenset({"VARCHAR"})),
    "status": ("Status", frozenset({"VARCHAR"})),
    "contract_type": ("ContractType", frozenset({"VARCHAR"})),
    "is_facility": ("IsFacility", frozenset({"BOOLEAN"})),
    "placing_broker_channel": ("placingBrokerChannel", frozenset({"VARCHAR"})),
    "created_at": ("createdAt", frozenset({"VARCHAR", "UBIGINT", "BIGINT", "DOUBLE"})),
    "updated_at": ("updatedAt", frozenset({"VARCHAR", "UBIGINT", "BIGINT", "DOUBLE"})),
    "channels": ("channels", frozenset({"ARRAY"})),
}
KNOWN_KEYS = {api.lower(): column for column, (api, _) in FIELDS.items()}


@dataclasses.dataclass
class RiskLoad:
    user_id: str
    api_items: int
    distinct_risks: int
    duplicates: int
    skipped_without_id: int
    added: int
    changed: int
    gone: int
    unchanged: int
    channels: int
    removed_from_warehouse: int
    drift: list[dict[str, Any]]
    child_tables: list[str]
    preview: list[dict[str, Any]]
    parsed: int = 0
    """Elements parsed and staged: all of them in a whole load, the changed ones in a delta load."""
    delta: bool = False
    """A delta load (``_delta_scan``): the elements equal to their stored documents were not read again."""
    set_aside: tuple = ()
    """The answer's elements not loaded (``Landed.set_aside``, recorded in ``quarantine``)."""


def _pointer(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


FILE = "read_json_objects(?, format = 'array')"
"""The landed answer's elements, each as JSON text (``json``): the source of a whole load."""
ACCEPTED = "(SELECT json FROM accepted_risks)"
"""The elements of an answer that has some set aside (``Landed.set_aside``): the others, in their order."""
CHANGED = "(SELECT json FROM scan_risks WHERE json IS NOT NULL)"
"""The elements a delta load reads: the ones whose text is not the stored document's (``_delta_scan``)."""


def inspect_keys(conn: duckdb.DuckDBPyConnection, path: str, source: str = FILE) -> dict[str, set[str]]:
    """Every top-level key in the file (or in ``source``'s elements) with the JSON types its values take.

    Rows share a handful of shapes, so DuckDB reduces the file to its distinct ``json_structure``
    values (one parse a row) and only those few are read here."""
    keys: dict[str, set[str]] = {}
    for (structure,) in conn.execute(
        f"SELECT DISTINCT json_structure(json) FROM {source}", [path] if source == FILE else []  # noqa: S608 - a constant
    ).fetchall():
        try:
            shape = json.loads(structure)
        except RecursionError:  # a document too deep for Python: set aside as it was landed, not read here
            continue
        if not isinstance(shape, dict):
            continue
        for key, kind in shape.items():
            keys.setdefault(key, set()).add(_json_kind(kind))
    return keys


def _json_kind(kind: Any) -> str:
    if isinstance(kind, list):
        return "ARRAY"
    if isinstance(kind, dict):
        return "OBJECT"
    return str(kind)


def _drift(keys: dict[str, set[str]]) -> list[dict[str, Any]]:
    out = []
    for key, types in sorted(keys.items()):
        column = KNOWN_KEYS.get(key.lower())
        if column is None:
            out.append({"field": key, "kind": "new_field", "json_types": sorted(types)})
        elif types - FIELDS[column][1] - {"NULL"}:
            out.append({"field": key, "kind": "type_change", "json_types": sorted(types)})
    return out


def elements(conn: duckdb.DuckDBPyConnection, landed: Landed) -> tuple[str, int]:
    """The source of the answer's elements the loader takes, and how many there are: the file itself, or,
    when some of its elements were set aside as it was landed, ``accepted_risks`` (the others)."""
    if not landed.set_aside:
        return FILE, landed.items
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE accepted_risks AS
            SELECT json FROM read_json_objects(?, format = 'array'{landed.read_option}) WITH ORDINALITY AS e(json, ord)
            WHERE NOT list_contains(?::BIGINT[], ord) ORDER BY ord""",  # noqa: S608 - a number
        [str(landed.path), [a.position for a in landed.set_aside]])
    return ACCEPTED, landed.accepted


def stage(conn: duckdb.DuckDBPyConnection, path: str, keys: dict[str, set[str]], items: int,
          source: str = FILE) -> tuple[int, int]:
    """``stage_risks``: one row per distinct risk id (the highest generation, then the last seen), from
    the file's elements (or ``source``'s, ``items`` of them).

    Returns (elements without an id, elements with one); their difference from the distinct count
    is the duplicates the answer carried."""
    paths: list[str] = []
    exprs: dict[str, str] = {}
    for column, (api, _) in FIELDS.items():
        variants = [k for k in keys if k.lower() == api.lower()]
        refs = []
        for key in variants:
            paths.append(_pointer(key))
            refs.append(f"v[{len(paths)}]")
        exprs[column] = f"coalesce({', '.join(refs)})" if len(refs) > 1 else (refs[0] if refs else "NULL::VARCHAR")
    if not paths:
        paths.append("/id")
    e = exprs
    own_id = f"v[{paths.index('/id') + 1}]" if "/id" in paths else "NULL::VARCHAR"
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE stage_risks AS
        SELECT {e['risk_id']} AS risk_id,
               split_part({e['risk_id']}, '::', 1) AS root_id,
               {e['rev']} AS rev,
               TRY_CAST(split_part({e['rev']}, '-', 1) AS INTEGER) AS rev_generation,
               {e['doc_type']} AS doc_type,
               trim({e['umr']}) AS umr,
               trim({e['insured_name']}) AS insured_name,
               {e['status']} AS status,
               {e['contract_type']} AS contract_type,
               ws_bool({e['is_facility']}) AS is_facility,
               {e['placing_broker_channel']} AS placing_broker_channel,
               ws_ts({e['created_at']}) AS created_at,
               ws_ts({e['updated_at']}) AS updated_at,
               coalesce(TRY_CAST({e['channels']} AS VARCHAR[]), []) AS channels,
               json AS raw,
               {own_id} AS own_id
        FROM (SELECT json, json_extract_string(json, ?::VARCHAR[]) AS v FROM {source})""",  # noqa: S608 - only column positions and a constant are formatted in
        [paths, path] if source == FILE else [paths],
    )
    # Rows keep the answer's order (rowid). Ids missing or repeated are rare: only then is anything
    # removed, the highest generation (then the last seen) of each id staying.
    with_id, distinct = conn.execute(
        "SELECT count(risk_id) FILTER (WHERE risk_id <> ''), count(DISTINCT risk_id) FILTER (WHERE risk_id <> '') "
        "FROM stage_risks"
    ).fetchone()
    if with_id != items:
        conn.execute("DELETE FROM stage_risks WHERE coalesce(risk_id, '') = ''")
    if distinct != with_id:
        conn.execute(
            """DELETE FROM stage_risks WHERE rowid NOT IN (
                 SELECT first(rowid ORDER BY rev_generation DESC NULLS LAST, rowid DESC)
                 FROM stage_risks GROUP BY risk_id)"""
        )
    return items - with_id, with_id


DECLARED = {api: set() for api, _ in FIELDS.values()}
"""The declared names as ``inspect_keys`` would find them in an answer that uses exactly those."""


def _inspect_and_stage(conn: duckdb.DuckDBPyConnection, path: str, items: int) -> tuple[dict[str, set[str]], tuple[int, int]]:
    """``inspect_keys`` and ``stage`` of a whole load at once: DuckDB reads a JSON array on one thread,
    so the keys are read on a second connection in a thread while the file is staged under the declared
    names. Only when a declared field came under another spelling (``insuredName``) is it staged again,
    with every spelling found: what ``stage`` makes is then exactly what it would have made after
    ``inspect_keys``. Returns (the keys, ``stage``'s counts)."""
    with db.beside(conn, inspect_keys, path) as reading:
        staged = stage(conn, path, DECLARED, items)
    keys = reading.result()
    if any(key.lower() in KNOWN_KEYS and key not in DECLARED for key in keys):
        staged = stage(conn, path, keys, items)
    return keys, staged


RAW_COLUMNS = "user_id, endpoint, fetched_at, sha256, bytes, items, path"
RAW_MD5 = "CASE WHEN own_id = risk_id THEN md5(raw) END"
"""``risks.raw_md5``: the MD5 of the document's text, where its own ``id`` field is its ``risk_id`` (NULL
otherwise: then no delta load takes an element for it, ``_delta_scan``)."""
RISK_COLUMNS = [c for c in FIELDS if c != "channels"] + ["root_id", "rev_generation", "raw"]
NEWER_OR_SAME = """CREATE OR REPLACE TEMP TABLE applied AS
    SELECT s.risk_id FROM stage_risks s LEFT JOIN risks r USING (risk_id)
    WHERE r.risk_id IS NULL
       OR (coalesce(s.rev_generation, -1), coalesce(s.updated_at, TIMESTAMP '0001-01-01'))
          >= (coalesce(r.rev_generation, -1), coalesce(r.updated_at, TIMESTAMP '0001-01-01'))"""
"""The staged documents that are new, or at least as new as the stored ones (revision generation,
then ``updatedAt``): the ones this list may write."""
APPLIED = "SELECT risk_id FROM applied"


WRITES = ("risks", "risk_channels", "risks__*", "risk_visibility", "risk_history", "risks_gone", "detail_failures",
          "sync_state", "raw_responses", "schema_drift", "quarantine")
"""What a risk list's load (and an organisation's retirement) writes."""


def scope(landed: Landed) -> Scope:
    """A PostgreSQL load of ``landed``: its organisation's rows and every root it lists or saw before."""
    def staged_roots(conn: duckdb.DuckDBPyConnection) -> list[str]:
        source, items = elements(conn, landed)
        if not items:
            return []
        path = str(landed.path)
        stage(conn, path, inspect_keys(conn, path, source), items, source)
        roots = [r for (r,) in conn.execute("SELECT DISTINCT root_id FROM stage_risks").fetchall()]
        conn.execute("DROP TABLE stage_risks")
        conn.execute("DROP TABLE IF EXISTS accepted_risks")
        return roots

    return Scope(writes=WRITES, users=(landed.user_id,), staged_roots=staged_roots)


def retire_scope(user_id: str) -> Scope:
    return Scope(writes=WRITES, users=(user_id,))


class SuspiciousShrink(WhitespaceError):
    """An answer that would drop more of an organisation's risks than allowed: it is not applied."""

    def __init__(self, user_id: str, before: int, after: int, allowed: float) -> None:
        super().__init__(
            f"The risk list of {user_id} shrank from {before:,} to {after:,} risks, more than "
            f"WHITESPACE_MAX_SHRINK allows ({allowed:.0%}); nothing was changed. If the platform really "
            "dropped them, run 'whitespace-etl sync --accept-shrink', or sync again: the same answer twice "
            "in a row is accepted.")
        self.user_id, self.before, self.after = user_id, before, after


def load_list(conn: duckdb.DuckDBPyConnection, landed: Landed, raw_rel_path: str, now: dt.datetime | None = None,
              max_shrink: float = 1.0) -> RiskLoad:
    """Replace exactly this organisation's view of the risks, in one transaction. An answer that drops
    more than ``max_shrink`` of the organisation's risks (an empty one included) raises
    ``SuspiciousShrink`` and changes nothing."""
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    path, user = str(landed.path), landed.user_id
    previous = conn.execute("SELECT sha256, api_items, distinct_risks FROM sync_state WHERE user_id = ?",
                            [user]).fetchone()
    if previous and previous[:2] == (landed.sha256, landed.items):
        return _same_answer(conn, landed, raw_rel_path, previous[2], now)
    answer, accepted = elements(conn, landed)
    delta = bool(previous and previous[2]) and _delta_scan(conn, path, accepted, answer)
    source, parsed = (CHANGED, _count(conn, CHANGED)) if delta else (answer, accepted)
    if delta or not parsed or source != FILE:
        keys = inspect_keys(conn, path, source) if parsed else {}
        without_id, with_id = stage(conn, path, keys, parsed, source)
    else:
        keys, (without_id, with_id) = _inspect_and_stage(conn, path, parsed)
    drift = _drift(keys)
    if delta:  # the scan found an id on every element, each id once
        without_id, with_id = 0, accepted
    conn.execute(LISTED_DELTA if delta else LISTED_WHOLE)
    distinct = accepted if delta else _count(conn, "stage_risks")
    try:
        if previous and previous[2] and distinct < previous[2] * (1 - max_shrink):
            raise SuspiciousShrink(user, previous[2], distinct, max_shrink)
        added, changed, unchanged, gone = conn.execute(DIFF_DELTA if delta else DIFF_WHOLE, [user]).fetchone()
        children = _apply(conn, landed, raw_rel_path, distinct, drift, now,
                          (added, gone) if delta else None)
        channels = conn.execute(
            "SELECT coalesce(sum(len(channels)), 0) FROM stage_risks").fetchone()[0] + (conn.execute(
            f"SELECT count(*) FROM risk_channels WHERE risk_id IN ({UNCHANGED})").fetchone()[0] if delta else 0)  # noqa: S608
        preview = conn.execute(
            f"""SELECT risk_id, umr, insured_name, status, updated_at FROM stage_risks
                {f"UNION ALL SELECT risk_id, umr, insured_name, status, updated_at FROM risks WHERE risk_id IN ({UNCHANGED})"
                 if delta else ""}
                ORDER BY updated_at DESC NULLS LAST, risk_id LIMIT 5"""  # noqa: S608 - constants
        ).fetchall()
    finally:
        for table in ("stage_risks", "applied", "scan_risks", "accepted_risks"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("DROP VIEW IF EXISTS listed")
    removed, child_tables = children
    return RiskLoad(
        user_id=user, api_items=landed.items, distinct_risks=distinct, duplicates=with_id - distinct,
        skipped_without_id=without_id, added=added, changed=changed, gone=gone,
        unchanged=unchanged, channels=int(channels),
        removed_from_warehouse=removed, drift=drift, child_tables=child_tables,
        preview=_rows(preview), parsed=parsed, delta=delta, set_aside=landed.set_aside,
    )


def _rows(preview: list[tuple]) -> list[dict[str, Any]]:
    return [dict(zip(("risk_id", "umr", "insured_name", "status", "updated_at"), r, strict=True)) for r in preview]


UNCHANGED = "SELECT risk_id FROM scan_risks WHERE json IS NULL"
"""A delta load's elements whose text is the stored document's: nothing of theirs is parsed or written."""
LISTED_WHOLE = "CREATE OR REPLACE TEMP VIEW listed AS SELECT risk_id, root_id FROM stage_risks"
"""``listed``: every distinct risk of the answer, and its root."""
LISTED_DELTA = ("CREATE OR REPLACE TEMP VIEW listed AS "
                "SELECT risk_id, split_part(risk_id, '::', 1) AS root_id FROM scan_risks")
"""A delta load's ``listed``: every element of the scan (the parsed ones have the same id: ``/id``)."""
_PREVIOUS = "SELECT risk_id FROM risk_visibility WHERE user_id = $1"
DIFF_WHOLE = f"""SELECT count(*) FILTER (WHERE s.risk_id IS NOT NULL AND p.risk_id IS NULL),
                        count(*) FILTER (WHERE s.risk_id IS NOT NULL AND p.risk_id IS NOT NULL AND r.rev IS DISTINCT FROM s.rev),
                        count(*) FILTER (WHERE s.risk_id IS NOT NULL AND p.risk_id IS NOT NULL AND r.rev IS NOT DISTINCT FROM s.rev),
                        count(*) FILTER (WHERE s.risk_id IS NULL)
                 FROM stage_risks s FULL JOIN ({_PREVIOUS}) p ON p.risk_id = s.risk_id
                 LEFT JOIN risks r ON r.risk_id = p.risk_id"""  # noqa: S608 - constants
"""(added, changed, unchanged, gone): the answer's risks against the ones this organisation saw
before (a changed one has another revision than the stored document), and the ones it no longer lists."""
DIFF_DELTA = f"""SELECT count(*) FILTER (WHERE s.risk_id IS NOT NULL AND p.risk_id IS NULL),
                        count(*) FILTER (WHERE p.risk_id IS NOT NULL AND c.risk_id IS NOT NULL),
                        count(*) FILTER (WHERE s.risk_id IS NOT NULL AND p.risk_id IS NOT NULL AND c.risk_id IS NULL),
                        count(*) FILTER (WHERE s.risk_id IS NULL)
                 FROM scan_risks s FULL JOIN ({_PREVIOUS}) p ON p.risk_id = s.risk_id
                 LEFT JOIN (SELECT t.risk_id FROM stage_risks t JOIN risks r USING (risk_id)
                            WHERE r.rev IS DISTINCT FROM t.rev) c ON c.risk_id = s.risk_id"""  # noqa: S608 - constants
"""``DIFF_WHOLE`` for a delta load: an element equal to its stored document has that document's
revision, so only the parsed ones can have another."""


def _count(conn: duckdb.DuckDBPyConnection, relation: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]  # noqa: S608 - constants only


def _delta_scan(conn: duckdb.DuckDBPyConnection, path: str, items: int, source: str = FILE) -> bool:
    """``scan_risks``: each element's ``id``, and its text where that is not, byte for byte, the text of
    a document the warehouse holds. True when a delta load may use it, which needs:

    - every element has an ``id`` and no id comes twice: otherwise the whole answer is staged, and the
      rules for missing ids and duplicates (``stage``) apply as they always did;
    - no risk list ever carried a field the loader does not know (no ``schema_drift`` row for
      ``/risks``): the elements a delta load does not read are then known to carry none either, so the
      drift check over the read ones is the drift check over the answer. Once one has, every load is
      whole (the check must see every element).

    An element equal to a stored document is that document: the same text gives the same row, the
    same channels, the same child rows, and its history row exists (every write records one). Text, not
    ``rev``, decides: a list row is a view the API renders, and whether its text can change while the
    document's revision does not is not known (the sandbox's ``status_display`` fault does that).

    The texts are compared by their MD5 (``risks.raw_md5``, set only where the document's own ``id`` is
    its ``risk_id``), so the stored texts are not read, and only the elements that match no stored
    document are parsed for their ``id``: a matched one has the stored document's (its text says so).
    DuckDB reads the answer on one thread; the stored digests are the join's build side (the answer's
    elements only pass through it), which its optimizer, not knowing how many elements the file holds,
    would otherwise turn round."""
    if conn.execute("SELECT count(*) FROM schema_drift WHERE endpoint = ?", [endpoints.RISKS]).fetchone()[0]:
        return False
    conn.execute("SET disabled_optimizers = 'build_side_probe_side'")
    try:
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE scan_risks AS
                SELECT coalesce(r.risk_id, json_extract_string(e.json, '/id')) AS risk_id,
                       CASE WHEN r.risk_id IS NULL THEN e.json END AS json
                FROM (SELECT json, md5(json) AS md5 FROM {source}) e
                LEFT JOIN (SELECT risk_id, raw_md5 FROM risks WHERE raw_md5 IS NOT NULL) r ON r.raw_md5 = e.md5""",  # noqa: S608 - a constant
            [path] if source == FILE else [],
        )
    finally:
        conn.execute("RESET disabled_optimizers")
    with_id, distinct = conn.execute(
        "SELECT count(*) FILTER (WHERE risk_id <> ''), count(DISTINCT risk_id) FROM scan_risks").fetchone()
    if with_id == distinct == items:
        return True
    conn.execute("DROP TABLE scan_risks")
    return False


def _apply(conn: duckdb.DuckDBPyConnection, landed: Landed, raw_rel_path: str, distinct: int, drift: list[dict],
           now: dt.datetime, delta: tuple[int, int] | None) -> tuple[int, list[str]]:
    """The staged documents and the organisation's visibility of ``listed``, in one transaction.
    ``delta``: (added, gone) of a delta load, whose visibility rows change only where those are not 0.
    Returns (risks no organisation sees any more, the child tables written)."""
    cols = ", ".join(RISK_COLUMNS)
    user = landed.user_id
    children: list[str] = []
    with db.transaction(conn):
        # Newest wins: a document another organisation's fresher list already holds at a later revision
        # keeps that revision; this list only adds its visibility (and its revision to the history).
        conn.execute(NEWER_OR_SAME)
        conn.execute(f"DELETE FROM risks WHERE risk_id IN ({APPLIED})")  # noqa: S608 - a constant
        conn.execute(f"INSERT INTO risks ({cols}, raw_md5, loaded_at) SELECT {cols}, {RAW_MD5}, ? "  # noqa: S608
                     f"FROM stage_risks WHERE risk_id IN ({APPLIED})", [now])
        conn.execute(f"DELETE FROM risk_channels WHERE risk_id IN ({APPLIED})")  # noqa: S608
        conn.execute(
            f"""INSERT INTO risk_channels (risk_id, position, channel, company_id, team_id)
               SELECT risk_id, pos - 1, ch, upper(split_part(ch, '_', 1)),
                      CASE WHEN strpos(ch, '_') > 0 THEN substr(ch, strpos(ch, '_') + 1) END
               FROM (SELECT risk_id, unnest(channels) AS ch, unnest(range(1, len(channels) + 1)) AS pos
                     FROM stage_risks WHERE risk_id IN ({APPLIED}))"""  # noqa: S608
        )
        if delta is None:
            conn.execute("DELETE FROM risk_visibility WHERE user_id = ?", [user])
            conn.execute("INSERT INTO risk_visibility (risk_id, user_id, synced_at) SELECT risk_id, ?, ? FROM listed",
                         [user, now])
        else:
            added, gone = delta
            conn.execute("UPDATE risk_visibility SET synced_at = ? WHERE user_id = ?", [now, user])
            if gone:
                conn.execute("DELETE FROM risk_visibility WHERE user_id = $1 AND risk_id NOT IN "
                             "(SELECT risk_id FROM listed)", [user])
            if added:
                conn.execute("INSERT INTO risk_visibility (risk_id, user_id, synced_at) SELECT risk_id, $1, $2 "
                             "FROM listed WHERE risk_id NOT IN (SELECT risk_id FROM risk_visibility WHERE user_id = $1)",
                             [user, now])
        # A root that left this organisation's list takes its pending detail failures with it (they
        # would keep the organisation "changed" for ever).
        if conn.execute("SELECT count(*) FROM detail_failures WHERE user_id = ?", [user]).fetchone()[0]:
            conn.execute("DELETE FROM detail_failures WHERE user_id = ? AND root_id NOT IN (SELECT root_id FROM listed)",
                         [user])
        _record_history(conn, now)
        for item in drift:
            if item["kind"] == "new_field" and "ARRAY" in item["json_types"]:
                children.append(_load_child(conn, item["field"]))
                item["child_table"] = children[-1]
        # A delta load that took no visibility away cannot leave a risk nobody sees (each one it wrote is
        # listed, so visible): the search, a pass over every risk, is needed only when it did.
        removed = _remove_invisible(conn, children, now) if delta is None or delta[1] else 0
        _record(conn, landed, raw_rel_path, distinct, drift, now)
    return removed, children


def _same_answer(conn, landed: Landed, raw_rel_path: str, distinct: int, now: dt.datetime) -> RiskLoad:
    """The answer is byte for byte the one already loaded: only the sync times move on. Its figures
    (channels, preview) are read from what the warehouse holds for the organisation's risks, not from
    the answer, which is not read again (docs/data-model.md, "Delta loads")."""
    user = landed.user_id
    with db.transaction(conn):
        conn.execute("UPDATE risk_visibility SET synced_at = ? WHERE user_id = ?", [now, user])
        _record(conn, landed, raw_rel_path, distinct, [], now)
    channels = conn.execute(f"SELECT count(*) FROM risk_channels WHERE risk_id IN ({_PREVIOUS})",  # noqa: S608
                            [user]).fetchone()[0]
    preview = conn.execute(f"""SELECT risk_id, umr, insured_name, status, updated_at FROM risks WHERE risk_id IN ({_PREVIOUS})
                               ORDER BY updated_at DESC NULLS LAST, risk_id LIMIT 5""", [user]).fetchall()  # noqa: S608
    return RiskLoad(user_id=user, api_items=landed.items, distinct_risks=distinct, duplicates=0,
                    skipped_without_id=0, added=0, changed=0, gone=0, unchanged=distinct, channels=int(channels),
                    removed_from_warehouse=0, drift=[], child_tables=[], preview=_rows(preview), parsed=0, delta=True,
                    set_aside=landed.set_aside)


def _load_child(conn: duckdb.DuckDBPyConnection, field: str) -> str:
    table = db.child_table("risks", field, conn)
    db.ensure_table(conn, table)
    name = db.ident(table.name)
    # Only the documents this list wrote: a fresher revision another list holds keeps its own elements.
    conn.execute(f"DELETE FROM {name} WHERE parent_id IN ({APPLIED})")  # noqa: S608
    conn.execute(
        f"""INSERT INTO {name} (parent_id, position, value)
            SELECT risk_id, pos - 1, item FROM (
              SELECT risk_id, unnest(arr) AS item, unnest(range(1, len(arr) + 1)) AS pos
              FROM (SELECT risk_id, TRY_CAST(json_extract(raw, ?) AS JSON[]) AS arr FROM stage_risks
                    WHERE risk_id IN ({APPLIED}))
              WHERE arr IS NOT NULL)""",  # noqa: S608
        [_pointer(field)],
    )
    return table.name


def _record_history(conn: duckdb.DuckDBPyConnection, now: dt.datetime) -> None:
    """New (risk, rev) pairs open a history row; the row before each closes when the next begins."""
    conn.execute(
        """INSERT INTO risk_history (risk_id, rev, root_id, rev_generation, status, umr, valid_from, valid_to,
                                     first_seen_at)
           SELECT risk_id, rev, root_id, rev_generation, status, umr, coalesce(updated_at, ?), NULL, ?
           FROM stage_risks s WHERE rev IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM risk_history h WHERE h.risk_id = s.risk_id AND h.rev = s.rev)""",
        [now, now],
    )
    # Only a risk that got a row now and has another can have an open row followed by a newer one (each
    # load closes what it opens): a first load of a list has none, and the window below is skipped.
    conn.execute(
        """UPDATE risk_history SET valid_to = n.next_from FROM (
             SELECT risk_id, rev, lead(valid_from) OVER (PARTITION BY risk_id ORDER BY rev_generation, valid_from)
                    AS next_from
             FROM risk_history WHERE risk_id IN (
               SELECT risk_id FROM risk_history WHERE risk_id IN (SELECT risk_id FROM stage_risks)
               GROUP BY risk_id HAVING count(*) > 1 AND bool_or(first_seen_at = ?))) n
           WHERE risk_history.risk_id = n.risk_id AND risk_history.rev = n.rev
             AND n.next_from IS NOT NULL AND risk_history.valid_to IS NULL""",
        [now],
    )


def _remove_invisible(conn: duckdb.DuckDBPyConnection, children: list[str], now: dt.datetime,
                      because: str = "left every synced organisation's list") -> int:
    """Risks no synced organisation sees any more move to ``risks_gone`` (their history is closed)."""
    orphan = "SELECT risk_id FROM risks WHERE risk_id NOT IN (SELECT risk_id FROM risk_visibility)"
    count = conn.execute(f"SELECT count(*) FROM ({orphan})").fetchone()[0]  # noqa: S608
    if count:
        conn.execute(f"UPDATE risk_history SET valid_to = ? WHERE valid_to IS NULL AND risk_id IN ({orphan})",  # noqa: S608
                     [now])
        cols = ", ".join(c.name for c in risks_table.columns)
        conn.execute(f"INSERT INTO risks_gone ({cols}, gone_at, gone_because) SELECT {cols}, ?, ? FROM risks "  # noqa: S608
                     f"WHERE risk_id IN ({orphan})", [now, because])
        tables = ["risk_channels"] + [t for t in db.risk_child_tables(conn) if t not in children] + children
        for t in dict.fromkeys(tables):
            conn.execute(f"DELETE FROM {db.ident(t)} WHERE {'risk_id' if t == 'risk_channels' else 'parent_id'} "  # noqa: S608
                         f"IN ({orphan})")
        conn.execute(f"DELETE FROM risks WHERE risk_id IN ({orphan})")  # noqa: S608
    return count


def retire(conn: duckdb.DuckDBPyConnection, user_id: str, now: dt.datetime | None = None) -> int:
    """An organisation the login no longer acts for: its visibility and sync state go, in one
    transaction, and the risks only it saw move to ``risks_gone``. Returns how many did."""
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    with db.transaction(conn):
        conn.execute("DELETE FROM risk_visibility WHERE user_id = ?", [user_id])
        conn.execute("DELETE FROM detail_failures WHERE user_id = ?", [user_id])
        conn.execute("DELETE FROM sync_state WHERE user_id = ?", [user_id])
        conn.execute("DELETE FROM quarantine WHERE user_id = ?", [user_id])
        return _remove_invisible(conn, [], now, f"organisation {user_id} left the login")


def _record(conn, landed: Landed, raw_rel_path: str, distinct: int, drift: list[dict], now: dt.datetime) -> None:
    quarantine.record(conn, landed.user_id, endpoints.RISKS, raw_rel_path, landed.set_aside, now, whole=True)
    fetched = landed.fetched_at.astimezone(dt.UTC).replace(tzinfo=None)
    conn.execute(
        f"INSERT OR REPLACE INTO raw_responses ({RAW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        [landed.user_id, endpoints.RISKS, fetched, landed.sha256, landed.bytes, landed.items, raw_rel_path],
    )
    conn.execute(
        "INSERT OR REPLACE INTO sync_state (user_id, company_id, synced_at, api_items, distinct_risks, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [landed.user_id, landed.company_id, now, landed.items, distinct, landed.sha256],
    )
    for item in drift:
        conn.execute(
            """INSERT INTO schema_drift (endpoint, field, kind, json_types, first_seen_at, last_seen_at, child_table)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT DO UPDATE SET json_types = excluded.json_types, last_seen_at = excluded.last_seen_at""",
            [endpoints.RISKS, item["field"], item["kind"], ",".join(item["json_types"]), now, now, item.get("child_table")],
        )
