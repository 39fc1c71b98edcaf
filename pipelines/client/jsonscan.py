"""Checks a (possibly huge) JSON array on disk element by element, holding one element at a time."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_WS = " \t\r\n"


class _Reader:
    def __init__(self, path: Path, chunk: int) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 - closed by scan_json_array
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.fill()

    def fill(self) -> bool:
        if self.eof:
            return False
        data = self.file.read(self.chunk)
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


def iter_json_array(path: Path, chunk: int = 1 << 20) -> Iterator[Any]:
    """The elements of the JSON array in ``path``, one at a time; ``ValueError`` if it is not one."""
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
                    complete = end < len(r.buf) or r.eof
                except json.JSONDecodeError:
                    complete = False
                if not complete:
                    if not r.fill():
                        raise ValueError(f"JSON array cut short after {count} elements") from None
                    continue
                count += 1
                r.pos = end
                yield element
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


def scan_json_array(path: Path, chunk: int = 1 << 20) -> int:
    """The number of elements of the JSON array in ``path``; ``ValueError`` if it is not one."""
    return sum(1 for _ in iter_json_array(path, chunk))
