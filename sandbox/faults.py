"""Faults the sandbox injects on demand, set by flags or by ``POST /_sandbox/faults``."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any


@dataclasses.dataclass
class Faults:
    """Counters say how many of the next matching requests get the fault (0: none)."""

    latency_ms: float = 0.0
    """Added to every request (API and Sync Gateway)."""
    rate_limit: int = 0
    """Answer 429 with ``Retry-After: retry_after``."""
    retry_after: str = "1"
    """Seconds, or an HTTP date."""
    error_burst: int = 0
    """Answer ``error_status`` (500, 502 or 503) with a Sync-Gateway-like JSON body."""
    error_status: int = 503
    drop: int = 0
    """Close the connection without an answer."""
    truncate: int = 0
    """Send only the first half of the JSON body (a complete HTTP message, cut JSON)."""
    html: int = 0
    """Answer with an HTML error page (status ``html_status``)."""
    html_status: int = 502
    hang: int = 0
    """Wait ``hang_seconds`` before answering (for client timeouts)."""
    hang_seconds: float = 5.0
    empty: int = 0
    """Answer 200 with an empty body."""
    token_dies_after: int = 0
    """Tokens issued from now on die after this many API requests, whatever their ``exp``."""
    drift: str = ""
    """Schema drift on ``/api/risks`` rows: ``added`` (new fields), ``changed_type``, or ``hostile``
    (long strings, SQL and unicode tricks, nulls, numbers as strings and strings as numbers)."""
    contract_drift: str = ""
    """``renamed``: contracts (``GET /api/risks/{riskID}``) carry ``control.placingStatus`` instead of
    ``control.status``, and impressions ``writtenLine`` instead of ``writtenLinePercentageString``."""
    status_display: bool = False
    """``/api/risks`` rows carry ``Status`` in its display form ("Firm Order" for ``FirmOrder``; both forms
    occur on the platform) while every document keeps its revision: a row's text changes and its ``rev``
    does not. Whether the real list can do this is not known (it is a view the API renders); a loader
    that takes an unchanged ``rev`` for an unchanged row would keep the old text. The MI report's rows
    (``POST /mireport/prepare``) carry ``status`` in that form too: which forms the real report uses is not
    known either, so the sandbox sends both."""
    line_pct_form: str = ""
    """``comma``: line sets (``GET /api/lines/{rootID}/combinedSets``) write every line percentage that has
    decimals with a decimal comma ("44,0272" for "44.0272"). Which forms people's lines take on the real
    platform is not known beyond the published example; this one is not a number a loader may guess at."""
    mi_rows_without_root: int = 0
    """The first this many rows of every ``POST /mireport/prepare`` answer carry no ``rootID``. The spec does
    not say the field is always there, and whether the real report can leave it out is not known; such a
    row cannot be tied to a placement, and a loader that drops it leaves the premiums short without a word."""
    bad_values: bool = False
    """Values no typed column can hold, in a few documents of each kind. In every seventh root (index
    divisible by 7) the Defined Data ``Premium_Amount`` is ``USD 98765432109876543210.55`` (20 integer
    digits) and the line sets' first written line is ``123456789012.5`` (12). In every MI answer the first
    row's premium has 20 integer digits, the second's reads ``EUR 1,250`` beside premiumCCY ``USD``, and
    the third's brokerage is ``12345678901.5%``. A loader takes each as NULL beside its text, counts it,
    and loads everything else."""
    hostile_documents: bool = False
    """Documents no loader can take, beside ordinary ones: every ``/api/risks`` answer's first row carries a
    field nested 3,000 levels deep and ends with ``42`` (not an object), a row without an id and one whose id
    is ``IC../../../escaped::FO``; every ``POST /mireport/prepare`` answer's first row carries that deep field;
    the contract (``GET /api/risks/{riskID}``) of every thirteenth root comes as a JSON array, not an object.
    A loader sets each aside, reports it, and loads the rest."""
    hostile_member: str = ""
    """An MU id to list, for the SUMO user, among the first company's members in ``/api/shared/corporate``
    (``MU../../escaped``: an id that would name a path outside the landing)."""
    nul_text: bool = False
    """Text with a NUL character (U+0000, ``\\u0000`` in JSON): in every ``/api/risks`` answer's first row's
    ``InsuredName``, every MI prepare answer's first row's ``insured``, and the contracts (``GET
    /api/risks/{riskID}``) of every eleventh root. A DuckDB file can keep it, PostgreSQL cannot."""
    corporate: str = ""
    """``/api/shared/corporate``: ``empty`` answers ``[]``; ``keyless`` adds a company without ``companyId``,
    a team without ``channel`` and a member without ``uniqueID`` to the first company, beside its own, and
    sends the second company (with its members) twice."""
    corporate_padding_mb: int = 0
    """``/api/shared/corporate`` ends with one more company whose ``notes`` are this many MB of text, streamed:
    an answer as large as a client must land without holding it."""
    duplicate_rows: int = 0
    """Repeat this many rows of every ``/api/risks`` answer (duplicate ids in one payload)."""
    empty_list_for: str = ""
    """A company id whose ``/api/risks`` is an empty list."""
    stale_list_for: str = ""
    """A company id whose ``/api/risks`` still shows the world before the last advance: one
    organisation's view lags behind another's, so a shared document has two revisions for a while."""
    activities_empty: bool = False
    """``POST /api/activities/filter`` answers ``[]``: a change the feed does not name (a kind not asked for)."""
    legacy_refresh_errors: bool = False
    """Sync Gateway 2.7 and earlier: a rejected refresh token is a 401, not a 500."""
    only: str = ""
    """Apply the counted faults only to paths starting with this prefix (``/api/risks``, ...)."""

    COUNTED = ("rate_limit", "error_burst", "drop", "truncate", "html", "hang", "empty")

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in dataclasses.fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(names))}")
            current = getattr(self, key)
            setattr(self, key, type(current)(value) if not isinstance(current, bool) else bool(value))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FaultState:
    """Thread-safe fault switches: ``take`` consumes the first counted fault that applies."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self._lock = threading.Lock()

    def set(self, values: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.faults.update(values)
            return self.faults.as_dict()

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()

    def take(self, path: str) -> str | None:
        with self._lock:
            f = self.faults
            if f.only and not path.startswith(f.only):
                return None
            for name in Faults.COUNTED:
                if getattr(f, name) > 0:
                    setattr(f, name, getattr(f, name) - 1)
                    return name
            return None
