"""The platform's change feed: activity documents name the roots whose contracts or lines changed
while no placing revision in ``/api/risks`` did (a line signed down is its own document).

Each organisation keeps a cursor in its landing (``risk_details/feed.json``): the newest activity time
seen, in the platform's own clock, and the ids of the activities already acted on near it. A sync asks
for every activity since the cursor less a day of overlap (so neither a clock difference nor a late
write loses one), and refetches the roots named by activities it has not acted on. The cursor moves
only after what they name is landed. What the feed cannot name (an activity of a kind not asked for)
is caught by the periodic reconciliation, which fetches every root again (``WHITESPACE_RECONCILE_DAYS``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import duckdb

from pipelines.client import WhitespaceClient
from pipelines.landing.raw import details_dir, read_objects, write_atomically

ACTIVITIES = ("Signed Lines", "Line Written")
"""Activity kinds that can mean a root's lines changed without its placing revision changing. Which
kinds a sign-down or a re-written line records on the real platform is not known: both are asked for."""
OVERLAP = dt.timedelta(hours=24)
STATE = "feed.json"
PLATFORM_TIME = "%Y-%m-%d %H:%M:%S"


@dataclasses.dataclass(frozen=True)
class FeedState:
    cursor: str | None = None
    """The newest activity (or list change) seen, ``YYYY-MM-DD hh:mm:ss`` in the platform's clock."""
    seen: tuple[str, ...] = ()
    """Ids of the activities within the overlap of the cursor that were already acted on."""
    reconciled_at: str | None = None
    """When every root's contract and lines were last fetched (this machine's clock, ISO 8601)."""

    def reconcile_due(self, every: dt.timedelta | None, now: dt.datetime | None = None) -> bool:
        if every is None:
            return False
        if self.reconciled_at is None:
            return True
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.datetime.fromisoformat(self.reconciled_at) >= every


def state_path(raw_dir: Path, user_id: str) -> Path:
    return details_dir(raw_dir, user_id) / STATE


def read_state(raw_dir: Path, user_id: str) -> FeedState:
    path = state_path(raw_dir, user_id)
    if not path.exists():
        return FeedState()
    data = json.loads(path.read_text())
    return FeedState(data.get("cursor"), tuple(data.get("seen") or ()), data.get("reconciled_at"))


def write_state(raw_dir: Path, user_id: str, state: FeedState) -> None:
    write_atomically(state_path(raw_dir, user_id), json.dumps(dataclasses.asdict(state), sort_keys=True))


def platform_time(value: object) -> dt.datetime | None:
    """A platform timestamp (``YYYY-MM-DD hh:mm:ss``, ISO 8601, epoch seconds) as naive UTC."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) or str(value).replace(".", "", 1).isdigit():
            return dt.datetime.fromtimestamp(float(value), dt.UTC).replace(tzinfo=None)
        parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def newest_change(list_path: Path) -> str | None:
    """The newest ``updatedAt`` of a landed risk list: where a first cursor starts."""
    with duckdb.connect() as conn:
        values = read_objects(conn, """SELECT DISTINCT coalesce(json->>'updatedAt', json->>'UpdatedAt', json->>'updatedat')
                                       FROM read_json_objects(?, format = 'array'{options})""",
                              [str(list_path)], list_path)
    times = [t for (v,) in values if (t := platform_time(v)) is not None]
    return max(times).strftime(PLATFORM_TIME) if times else None


@dataclasses.dataclass(frozen=True)
class Feed:
    roots: frozenset[str]
    """Roots named by activities not acted on yet."""
    state: FeedState
    """The state to keep once what they name is landed."""


def read_feed(client: WhitespaceClient, state: FeedState, list_path: Path) -> Feed:
    """The roots new activities name since the cursor (less the overlap), and the state after them."""
    if state.cursor is None:
        # A first fetch takes every root anyway: the feed starts at the list's newest change, and what
        # it already holds near there counts as acted on.
        start = newest_change(list_path)
        if start is None:
            return Feed(frozenset(), state)
        first = read_feed(client, dataclasses.replace(state, cursor=start), list_path)
        return Feed(frozenset(), first.state)
    since = (dt.datetime.strptime(state.cursor, PLATFORM_TIME) - OVERLAP).strftime(PLATFORM_TIME)
    found = [a for _kind, answer in client.each(lambda kind: client.activities(kind, since), ACTIVITIES)  # both at once
             for a in answer if isinstance(a, dict)]
    seen = set(state.seen)
    new = [a for a in found if a.get("_id") and a["_id"] not in seen]
    roots = frozenset(str(a.get("_id") or a.get("parentDocID")).split("::")[0] for a in new)
    times = {a["_id"]: platform_time(a.get("createdAt")) for a in found if a.get("_id")}
    cursor = max([dt.datetime.strptime(state.cursor, PLATFORM_TIME), *(t for t in times.values() if t)])
    keep = tuple(sorted(i for i, t in times.items() if t is None or t >= cursor - OVERLAP))
    return Feed(roots, dataclasses.replace(state, cursor=cursor.strftime(PLATFORM_TIME), seen=keep))
