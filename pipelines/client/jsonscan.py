"""Checks a (possibly huge) JSON array on disk element by element, holding one element at a time."""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipelines.client import documents

_WS = " \t\r\n"
_ENDS = ",]" + _WS
"""What may follow a whole element of an array."""


class _Reader:
    def __init__(self, path: Path | bytes, chunk: int) -> None:
        # closed by iter_json_array; ``bytes``: the array's text itself
        self.file = io.BytesIO(path) if isinstance(path, bytes) else open(path, "rb")  # noqa: SIM115
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.fill()

    def fill(self) -> bool:
        if self.eof:
            return False
        # at least as much as is held unread: an element longer than a chunk is re-read whole at each fill,
        # so reading as much again each time keeps that linear in its size, not quadratic
        data = self.file.read(max(self.chunk, len(self.buf) - self.pos))
        self.eof = not data
        self.buf = self.buf[self.pos :] + self.decoder.decode(data, final=self.eof)
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""


_LEADING_ID = re.compile(r'\{\s*"[iI][dD]"\s*:\s*("(?:[^"\\]|\\.)*")')
TOO_DEEP = object()
"""What ``iter_json_array`` yields for an element nested too deep for Python's parser to build."""


@dataclasses.dataclass(frozen=True)
class TooLarge:
    """What ``iter_json_array`` yields for an element longer than its ``max_element``: passed over as it
    streams by, never held whole."""

    chars: int
    digest: str
    """The MD5 of its text (``documents.SetAside.digest``)."""
    head: str
    """Its first 4,096 characters (where its id is, when it comes first)."""


def _pass_over(r: _Reader) -> TooLarge:
    """Reads past the element at ``r.pos``, a piece at a time, and leaves ``r.pos`` just after it."""
    head, digest, chars, skipper, pos = r.buf[r.pos : r.pos + 4096], hashlib.md5(), 0, documents.Scanner(), r.pos  # noqa: S324
    while True:
        end = skipper.feed(r.buf, pos)
        piece = r.buf[pos : end if end >= 0 else len(r.buf)]
        digest.update(piece.encode("utf-8", "surrogatepass"))
        chars += len(piece)
        if end >= 0:
            r.pos = end
            return TooLarge(chars, digest.hexdigest(), head)
        r.buf, r.pos, pos = "", 0, 0
        if not r.fill():
            raise ValueError("JSON array cut short inside an element")


def iter_json_array(path: Path | bytes, chunk: int = 1 << 20, spans: bool = False,
                    max_element: int = documents.MAX_BYTES) -> Iterator[Any]:
    """The elements of the JSON array in ``path``, one at a time; ``ValueError`` if it is not one. An
    element nested too deep for Python's parser is ``TOO_DEEP`` (its extent found by counting brackets),
    never a ``RecursionError``. ``spans``: (element, text, start, end) instead, its text being
    ``text[start:end]`` (not copied: most callers never need it). An element longer than ``max_element``
    characters is a ``TooLarge``, passed over as it streams by: memory stays flat whatever its size."""
    decoder = json.JSONDecoder()
    r = _Reader(path, chunk)
    try:
        if r.peek() != "[":
            raise ValueError("not a JSON array")
        r.pos += 1
        count = 0
        if r.peek() == "]":
            r.pos += 1
        else:
            while True:
                r.peek()
                try:
                    element, end = decoder.raw_decode(r.buf, r.pos)
                    # a number cut by the chunk ("0." of "0.5") parses too: whole only if what follows ends it
                    complete = r.eof or (end < len(r.buf) and r.buf[end] in _ENDS)
                except json.JSONDecodeError:
                    complete = False
                except RecursionError:
                    element, end = TOO_DEEP, documents.depth(r.buf, r.pos)[1]
                    complete = end >= 0 and (r.eof or (end < len(r.buf) and r.buf[end] in _ENDS))
                if not complete and len(r.buf) - r.pos > max_element:
                    count += 1
                    large = _pass_over(r)
                    yield (large, "", 0, 0) if spans else large
                elif not complete:
                    if not r.fill():
                        raise ValueError(f"JSON array cut short after {count} elements") from None
                    continue
                else:
                    count += 1
                    yield (element, r.buf, r.pos, end) if spans else element
                    r.pos = end
                sep = r.peek()
                r.pos += 1
                if sep == "]":
                    break
                if sep != ",":
                    raise ValueError(f"unexpected {sep!r} after element {count}" if sep else "JSON array cut short")
        if r.peek():
            raise ValueError("data after the end of the JSON array")
    finally:
        r.file.close()


def scan_json_array(path: Path | bytes, chunk: int = 1 << 20) -> int:
    """The number of elements of the JSON array in ``path`` (or in that text); ``ValueError`` if it is not one."""
    return sum(1 for _ in iter_json_array(path, chunk))


def inspect_json_array(path: Path, problem: Callable[[Any], tuple[str, object] | None] | None = None,
                       max_depth: int = documents.MAX_DEPTH, max_bytes: int = documents.MAX_BYTES,
                       chunk: int = 1 << 20) -> tuple[int, list[documents.SetAside]]:
    """The number of elements of the JSON array in ``path``, and the ones a loader must set aside:
    deeper than ``max_depth``, longer than ``max_bytes`` characters, or what ``problem`` finds wrong
    with an element (it returns the reason and the element's id as sent). ``ValueError`` if the file
    is not a JSON array."""
    count, aside = 0, []
    for element, text, start, end in iter_json_array(path, chunk, spans=True, max_element=max_bytes):
        count += 1
        found: tuple[str, object] | None = None
        if isinstance(element, TooLarge):
            named = _LEADING_ID.match(element.head)
            aside.append(documents.SetAside(count, f"larger than {max_bytes:,} characters",
                                            json.loads(named.group(1))[: documents.ID_SHOWN] if named else None,
                                            element.digest, element.chars))
            continue
        if end - start > max_bytes:
            found = (f"larger than {max_bytes:,} characters", None)
        elif element is TOO_DEEP or documents.too_deep(text, start, end, max_depth):
            found = (f"nested deeper than {max_depth} levels", None)
        elif text.find(documents.NUL_ESCAPE, start, end) >= 0 and documents.has_nul(element):
            found = (documents.NUL_REASON, None)
        elif problem is not None:
            found = problem(element)
        if found is not None:
            reason, document_id = found
            if document_id is None and isinstance(element, dict):
                document_id = element.get("id")
            elif document_id is None and element is TOO_DEEP:  # its id, if it comes first
                named = _LEADING_ID.match(text, start, min(end, start + 4096))
                document_id = json.loads(named.group(1)) if named else None
            aside.append(documents.SetAside.of(count, reason, text[start:end], document_id))
    return count, aside
