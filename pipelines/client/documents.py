"""What the platform's ids look like, and what a document must be for the loaders to take it.

Ids reach paths (the landing's folders), URLs (``/risks/{riskID}``) and SQL. Each one the platform
sends is checked against its grammar first; one outside it is never used, and its document is set
aside (quarantined) and reported instead. The grammar is the widest that the published spec and its
examples show (``MU5549901B-1A6F-4F0F-80D0-6659F7109BD8``, ``IC07417CB5-94EB-4485-B40D-AE3A9947ADA6::FO::
WHITESAILS::MARINE::SILS``): letters and digits in dash-separated groups, instance segments of letters,
digits, ``_`` and ``-`` after ``::``. No ``.``, ``/``, ``\\``, ``%``, space or control character can be
part of one, so none can name a path outside the landing or another URL.

A document deeper or larger than the limits below is set aside too: real contracts nest about ten
levels and weigh kilobytes, so the defaults are far beyond any real book, and below what would make
a parser give up (Python's ``json`` stops near 1,000 levels with ``RecursionError``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

from pipelines.client.errors import WhitespaceError

_GROUPS = r"[A-Za-z0-9]{1,64}(?:-[A-Za-z0-9]{1,64}){0,15}"
MU_ID = re.compile(rf"MU{_GROUPS}")
"""An organisation (membership) id: the ``UserID`` header, a folder of the landing."""
ROOT_ID = re.compile(rf"IC{_GROUPS}")
"""A placement (root risk) id."""
RISK_ID = re.compile(rf"IC{_GROUPS}(?:::[A-Za-z0-9_-]{{1,64}}){{0,15}}")
"""A document id: a root, then its instance and child segments after ``::``."""

MAX_DEPTH = 64
"""Nesting levels a document may have (objects and arrays inside each other)."""
MAX_BYTES = 16 << 20
"""Characters one document may have (16 MiB, DuckDB's default for one JSON object: a larger one in a file is
read only with a limit raised for it, at a cost in memory)."""
ID_SHOWN = 120
"""At most this much of a refused id is kept and shown."""


class InvalidId(WhitespaceError):
    """An id outside the platform's grammar: never used in a path, a URL or SQL."""

    def __init__(self, kind: str, value: object) -> None:
        super().__init__(f"{kind} {shown(value)} is not a Whitespace {kind} (outside the platform's id grammar): "
                         "it is not used, and nothing is written or asked for under it.")
        self.value = value


def shown(value: object) -> str:
    """An id as it may appear in a message or a table: quoted, escaped, cut short."""
    text = repr(value) if not isinstance(value, str) else repr(value[:ID_SHOWN])
    return text + ("…" if isinstance(value, str) and len(value) > ID_SHOWN else "")


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and MU_ID.fullmatch(value) is not None


def is_risk_id(value: object) -> bool:
    return isinstance(value, str) and RISK_ID.fullmatch(value) is not None


def is_root_id(value: object) -> bool:
    return isinstance(value, str) and ROOT_ID.fullmatch(value) is not None


def check_user_id(value: object) -> str:
    """``value`` if it is an MU id (or ``""``, the login-less corporate list); else ``InvalidId``."""
    if value == "" or is_user_id(value):
        return value  # type: ignore[return-value]
    raise InvalidId("MU id", value)


_OUTSIDE = re.compile(r'["\[\]{}]')
_INSIDE = re.compile(r'["\\]')
_SCALAR_END = re.compile(r"[,\]\s]")


class Scanner:
    """Finds where one JSON value ends, and how deep it nests, in text that may arrive piece by piece:
    brackets are counted, strings and their escapes passed over, nothing is parsed or kept."""

    def __init__(self) -> None:
        self.level = self.deepest = 0
        self.in_string = self.escaped = self.started = self.scalar = False

    def feed(self, text: str, i: int = 0, end: int | None = None) -> int:
        """Where the value ends in ``text[:end]`` (reading from ``i``), or -1 when it goes on past it."""
        n = len(text) if end is None else end
        if not self.started and i < n:
            self.started, self.scalar = True, text[i] not in '"[{'
        if self.scalar:  # a number or a literal: it ends where the array goes on
            m = _SCALAR_END.search(text, i, n)
            return m.start() if m else -1
        while i < n:
            if self.escaped:
                i, self.escaped = i + 1, False
                continue
            if self.in_string:
                m = _INSIDE.search(text, i, n)
                if m is None:
                    return -1
                i = m.end()
                if m.group() == "\\":
                    self.escaped = True
                    continue
                self.in_string = False
                if self.level == 0:
                    return i
                continue
            m = _OUTSIDE.search(text, i, n)
            if m is None:
                return -1
            i, token = m.end(), m.group()
            if token == '"':
                self.in_string = True
            elif token in "[{":
                self.level += 1
                self.deepest = max(self.deepest, self.level)
            else:
                self.level -= 1
                if self.level == 0:
                    return i
        return -1


def depth(text: str, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """(the deepest nesting, where the value that opens at ``start`` ends, -1 if the text stops first) in
    JSON text, without parsing it."""
    scanner = Scanner()
    stop = scanner.feed(text, start, end)
    return scanner.deepest, stop


def too_deep(text: str, start: int = 0, end: int | None = None, limit: int = MAX_DEPTH) -> bool:
    """Whether the value in ``text[start:end]`` nests deeper than ``limit``: counted only when it has
    more brackets than that at all (one C-speed count: real documents never get that far)."""
    stop = len(text) if end is None else end
    if text.count("[", start, stop) + text.count("{", start, stop) <= limit:
        return False
    return depth(text, start, stop)[0] > limit


NUL_ESCAPE = "\\u0000"
"""How a NUL character is written in JSON text."""
NUL_REASON = "holds a NUL character (U+0000), which PostgreSQL cannot store"
"""Why a document with one is set aside on either engine: the DuckDB file could keep it, a PostgreSQL
warehouse cannot, and both must give the same answers."""


def has_nul(value: Any) -> bool:
    """Whether a parsed JSON value holds U+0000 in any string or key."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def text_has_nul(text: str) -> bool:
    """Whether JSON text holds U+0000 (its escape, read as JSON: ``\\\\u0000`` is a backslash, not one)."""
    if NUL_ESCAPE not in text:
        return False
    try:
        return has_nul(json.loads(text))
    except (ValueError, RecursionError):
        return True  # cannot tell: the safe side


@dataclasses.dataclass(frozen=True)
class SetAside:
    """A document of an answer that the loaders do not take, and why."""

    position: int
    """Its place in the answer's array, from 1 (DuckDB's ``WITH ORDINALITY``)."""
    reason: str
    document_id: str | None
    """Its id as sent, when it has one (cut short), whatever it looks like."""
    digest: str
    """The MD5 of its text: the same document keeps its record from one answer to the next."""
    chars: int = 0
    """The length of its text (a reader of the answer must allow an element that large)."""

    @classmethod
    def of(cls, position: int, reason: str, text: str, document_id: object = None) -> SetAside:
        shown_id = None if document_id is None else str(document_id)[:ID_SHOWN]
        digest = hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324 - an identity, not a secret
        return cls(position, reason, shown_id, digest, len(text))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def risk_list_problem(element: Any) -> tuple[str, object] | None:
    """Why an element of ``/api/risks`` cannot be loaded (and its id as sent), or None."""
    if not isinstance(element, dict):
        return f"not a JSON object (a {type(element).__name__})", None
    found = element.get("id")
    if found is None:
        found = next((v for k, v in element.items() if k.lower() == "id"), None)
    if found is None or found == "":
        return "no id", None
    if not is_risk_id(found):
        return "id outside the platform's id grammar", found
    return None
