"""What a sync has to do, found before it starts any run.

An organisation needs no run when its ``/api/risks`` answer is byte for byte the one the warehouse
already holds and no contract or line set is waiting to be fetched (a changed root, a failed one) or
loaded. Finding that out costs the one request the run would make first anyway: when the list did
change, the answer the check landed is the one the run records and loads (``reuse_sha256``), so
nothing is fetched twice. The corporate list is checked the same way.

Anything the check cannot establish counts as a change: a failed request, a warehouse another
process holds, a missing file. The run then does the work, or reports the error, as it always did.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from pipelines.client import WhitespaceClient, endpoints
from pipelines.extract import details, feed
from pipelines.landing import raw
from pipelines.landing.raw import Landed

UNCHANGED = "unchanged"
CORPORATE = ""
"""The key of the corporate list among the organisations' MU ids."""


@dataclasses.dataclass(frozen=True)
class Check:
    key: str
    """MU id, or ``CORPORATE``."""
    reason: str
    """Why a run is needed, or ``UNCHANGED``."""
    landed: Landed | None = None
    """Changed: the answer this check landed, for the run to load. Unchanged: the one already loaded."""

    @property
    def changed(self) -> bool:
        return self.reason != UNCHANGED


@dataclasses.dataclass
class WarehouseState:
    """What the warehouse has loaded, read once before the checks (``pipelines.warehouse.state.read``)."""

    risk_lists: dict[str, str]
    """MU id -> SHA-256 of the risk list loaded for it."""
    corporate: str | None
    """SHA-256 of the corporate list loaded last."""
    details_waiting: set[str]
    """MU ids with a failed root or a landed detail file not loaded yet."""
    mi_waiting: bool = False
    """A landed MI report answer is not loaded yet."""
    marts_built: tuple[float, int] | None = None
    """When the marts were built (epoch seconds) and with which open-item age, if they were built from every
    load the warehouse holds (its ``marts_state`` record matches them); None: never, or a load came after
    them, whichever Dagster instance ran it (or a backup older than them was restored)."""



def check_organisation(client: WhitespaceClient, raw_dir: Path, state: WarehouseState | None,
                       previous: Landed | None, user_id: str, reconcile_every: dt.timedelta | None = None) -> Check:
    """Fetches the organisation's risk list and compares it with what the warehouse holds. An
    identical answer is deleted again (the one already landed stays); a new one is kept, landed."""
    download = raw.download_risk_list(client, raw_dir, user_id)
    reason = _risk_list_reason(raw_dir, state, previous, user_id, download.sha256)
    if reason == UNCHANGED:
        reason = _details_reason(client, raw_dir, previous, user_id, reconcile_every)
    if reason == UNCHANGED:
        download.path.unlink()
        return Check(user_id, UNCHANGED, previous)
    company_id = previous.company_id if previous else ""
    return Check(user_id, reason, raw.record(download, raw_dir, user_id, endpoints.RISKS, company_id))


def _answer_reason(state: WarehouseState | None, previous: Landed | None, sha256: str, loaded: str | None,
                   what: str) -> str | None:
    """Why a fetched answer needs a run, as far as the answer itself goes; None: it is the loaded one."""
    if state is None:
        return "the warehouse is in use by another process"
    if previous is None or not previous.path.exists():
        return "first sync"
    if sha256 != previous.sha256:
        return f"{what} changed"
    if loaded != sha256:
        return f"{what} not loaded yet"
    return None


def _risk_list_reason(raw_dir: Path, state: WarehouseState | None, previous: Landed | None,
                      user_id: str, sha256: str) -> str:
    loaded = state.risk_lists.get(user_id) if state else None
    reason = _answer_reason(state, previous, sha256, loaded, "risk list")
    if reason is not None:
        return reason
    if user_id in state.details_waiting:
        return "contracts or lines waiting to be loaded or fetched again"
    work = details.plan(previous.path, details.read_index(raw_dir, user_id))
    if work.needed or work.gone:
        return "contracts or lines to fetch"
    return UNCHANGED


def _details_reason(client: WhitespaceClient, raw_dir: Path, previous: Landed, user_id: str,
                    reconcile_every: dt.timedelta | None) -> str:
    """Why contracts or lines need fetching though the list did not change: a periodic reconciliation
    is due, or the activity feed names roots of the list (their line sets changed on their own)."""
    kept = feed.read_state(raw_dir, user_id)
    if kept.reconcile_due(reconcile_every):
        return "periodic reconciliation of contracts and lines due"
    named = feed.read_feed(client, kept, previous.path).roots
    if named and named & details.roots_in_list(previous.path).keys():  # the list is read only when needed
        return "contracts or lines changed (activity feed)"
    return UNCHANGED


def check_corporate(client: WhitespaceClient, raw_dir: Path, state: WarehouseState | None,
                    previous: Landed | None) -> Check:
    """The same for ``/api/shared/corporate``, streamed to the landing as received."""
    download = raw.download_corporate(client, raw_dir)
    reason = _answer_reason(state, previous, download.sha256, state.corporate if state else None, "corporate list")
    if reason is None:
        download.path.unlink()
        return Check(CORPORATE, UNCHANGED, previous)
    return Check(CORPORATE, reason, raw.record(download, raw_dir, CORPORATE, endpoints.CORPORATE))


def check_all(client: WhitespaceClient, user_ids: list[str], raw_dir: Path, state: WarehouseState | None,
              corporate_list: bool = True, reconcile_every: dt.timedelta | None = None) -> dict[str, Check]:
    """Checks every organisation (and the corporate list, unless told not to), ``max_concurrency``
    requests at a time, against ``state`` (None: the warehouse could not be read, so everything
    counts as changed). A check that fails says so as its reason: the run it leads to reports the
    error properly."""
    lists = raw.latest(raw_dir, endpoints.RISKS)
    corporate = raw.latest(raw_dir, endpoints.CORPORATE).get(CORPORATE)

    def one(key: str) -> Check:
        if key == CORPORATE:
            return check_corporate(client, raw_dir, state, corporate)
        return check_organisation(client.for_user(key), raw_dir, state, lists.get(key), key, reconcile_every)

    out = {}
    for key, check, exc in client.fan_out(one, [CORPORATE, *user_ids] if corporate_list else user_ids):
        out[key] = check if exc is None else Check(key, f"the check failed ({type(exc).__name__})")
    return out

