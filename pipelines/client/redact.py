"""Secrets are redacted where URLs and reprs are made, so nothing downstream can leak them."""

from __future__ import annotations

import re
from urllib.parse import urlencode

_SECRET_PARAMS = re.compile(r"((?:refresh_token|id_token|access_token|token)=)[^&#\s]+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """Masks token query parameters, bearer values and anything shaped like a JWT."""
    text = _SECRET_PARAMS.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    return _JWT.sub("***", text)


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"


def secret_url(base: str, **params: str | Secret) -> tuple[str, str]:
    """(real URL, redacted URL) for a query carrying secrets: the only place the real one is made."""
    real = urlencode({k: v.reveal() if isinstance(v, Secret) else v for k, v in params.items()})
    shown = urlencode({k: "***" if isinstance(v, Secret) else v for k, v in params.items()}, safe="*")
    return f"{base}?{real}", f"{base}?{shown}"
