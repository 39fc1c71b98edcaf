"""The sandbox's data: a deterministic London-market book of business.

Nothing is stored per risk. Every root risk is a pure function of ``(seed, index)`` and of the
list of clock ticks applied so far, so a world of 200,000 risks costs no more memory than one of
2,000; rows are produced on demand, one root at a time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache

EPOCH = dt.datetime(2025, 6, 2, 9, 0, 0, tzinfo=dt.UTC)
"""Sandbox 'now' before any tick; each tick moves the clock on by one day."""

ROOTS_AT_SCALE_1 = 1150
"""Roots at scale 1.0: about 1,500 risk documents for the SUMO broker, 450 and 200 for its two
carriers (the figures of Whitespace's help page)."""

BUCKET = "sandboxbucket"
"""The Sync Gateway bucket (database) the sandbox serves: the name Whitespace's own sample code uses."""


@dataclasses.dataclass(frozen=True)
class Team:
    team_id: str
    name: str


@dataclasses.dataclass(frozen=True)
class Organisation:
    company_id: str
    name: str
    role: str  # "broker" or "underwriter"
    teams: tuple[Team, ...]
    broker_code: str = ""
    market: str = ""  # "Lloyd's" or "Company"
    syndicate: str = ""
    pseudonym: str = ""

    def channel(self, team_id: str | None = None) -> str:
        return f"{self.company_id.lower()}_{team_id or self.teams[0].team_id}"


@dataclasses.dataclass(frozen=True)
class Membership:
    company_id: str
    user_id: str  # MU id
    teams: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    refresh_token: str
    memberships: tuple[Membership, ...]

    @property
    def is_sumo(self) -> bool:
        return len(self.memberships) > 1


ORGANISATIONS: list[Organisation] = [
    Organisation("GAILBKR", "Gail Brokers Ltd", "broker", (Team("ALL", "All Risks"),), "0999"),
    Organisation(
        "ATLASBKR",
        "Atlas Placing Partners LLP",
        "broker",
        (Team("ALL", "All Risks"), Team("MARINE", "Marine")),
        "1234",
    ),
    Organisation(
        "WHITESAILS",
        "Whitesails Syndicate Management",
        "underwriter",
        (Team("MARINE", "Marine Hull and Cargo"), Team("ALL", "All Risks")),
        market="Lloyd's",
        syndicate="1444",
        pseudonym="WSL",
    ),
    Organisation(
        "MCNEILLIEUWR",
        "McNeillie Underwriting Agency",
        "underwriter",
        (Team("ALL", "All Risks"),),
        market="Lloyd's",
        syndicate="2121",
        pseudonym="MCN",
    ),
    Organisation(
        "NORTHGATEINS",
        "Northgate Insurance Company SE",
        "underwriter",
        (Team("ALL", "All Risks"),),
        market="Company",
        syndicate="N7731",
    ),
]
ORG_BY_ID = {o.company_id: o for o in ORGANISATIONS}

# Carrier -> probability that a root is shown to it (calibrated to the help page's counts).
CARRIER_SHARE = {"WHITESAILS": 0.26, "MCNEILLIEUWR": 0.09, "NORTHGATEINS": 0.30}
CARRIER_TEAM = {"WHITESAILS": "MARINE", "MCNEILLIEUWR": "ALL", "NORTHGATEINS": "ALL"}

USERS: list[User] = [
    User(
        "Sam Sumo",
        "sandbox-renewable-sumo",
        (
            Membership("GAILBKR", "MU1F0E2A10-5C3B-4E4A-9A1D-0B6C2D3E4F50", ("gailbkr_ALL",)),
            Membership("WHITESAILS", "MU2A1B3C40-6D5E-4F70-8A9B-1C2D3E4F5061", ("whitesails_MARINE",)),
            Membership("MCNEILLIEUWR", "MU3B2C4D50-7E6F-4081-9BAC-2D3E4F506172", ("mcneillieuwr_ALL",)),
        ),
    ),
    User(
        "Olive Single",
        "sandbox-renewable-single",
        (Membership("ATLASBKR", "MU4C3D5E60-8F70-4192-ACBD-3E4F50617283", ("atlasbkr_ALL", "atlasbkr_MARINE")),),
    ),
    # Colleagues without a renewable token: they appear in /api/shared/corporate only.
    User("Gail Harper", "", (Membership("GAILBKR", "MU5D4E6F70-9081-42A3-BDCE-4F5061728394", ("gailbkr_ALL",)),)),
    User("Ned North", "", (Membership("NORTHGATEINS", "MU6E5F7081-A192-43B4-CEDF-5061728394A5", ("northgateins_ALL",)),)),
]
USER_BY_TOKEN = {u.refresh_token: u for u in USERS if u.refresh_token}
MEMBERSHIP_BY_MU = {m.user_id: (u, m) for u in USERS for m in u.memberships}
EXTRA_CARRIER_SHARE = 0.05
"""Share of the roots shown to each carrier added by ``add_organisations``."""


def add_organisations(total: int) -> int:
    """Grows the SUMO user's organisations to ``total`` by adding carriers CARRIER01, CARRIER02, …
    (each shown about 5% of the placements). For scale tests of many partitions; call it once,
    before a world is built, in the process that serves the sandbox. Returns the count added."""
    sumo = USERS[0]
    missing = total - len(sumo.memberships)
    if missing <= 0:
        return 0
    added = [_carrier(f"CARRIER{n:02d}", f"Carrier {n:02d} Underwriting", f"C{n:04d}", f"extra-{n}")
             for n in range(1, missing + 1)]
    grown = dataclasses.replace(sumo, memberships=sumo.memberships + tuple(added))
    USERS[0] = grown
    _index_users()
    return missing


def add_logins(logins: int, organisations: int) -> list[tuple[str, str]]:
    """Adds ``logins`` users, each with a renewable token and ``organisations`` carriers of its own
    (``L01C01``, ``L01C02``, …, each shown about 5% of the placements): a team's many logins, for scale
    tests. Call it once, before a world is built, in the process that serves the sandbox. Returns each
    new login's (token, user name)."""
    made = []
    for n in range(1, logins + 1):
        name = f"Login {n:02d}"
        memberships = tuple(_carrier(f"L{n:02d}C{m:02d}", f"Login {n:02d} Carrier {m:02d}", f"L{n:02d}{m:02d}",
                                     f"login-{n}-{m}") for m in range(1, organisations + 1))
        user = User(name, f"sandbox-renewable-login-{n:02d}", memberships)
        USERS.append(user)
        made.append((user.refresh_token, name))
    _index_users()
    return made


def _carrier(company: str, name: str, syndicate: str, seed: str) -> Membership:
    org = Organisation(company, name, "underwriter", (Team("ALL", "All Risks"),), market="Company",
                       syndicate=syndicate)
    ORGANISATIONS.append(org)
    ORG_BY_ID[company] = org
    CARRIER_SHARE[company] = EXTRA_CARRIER_SHARE
    CARRIER_TEAM[company] = "ALL"
    mu = "MU" + str(uuid.UUID(int=random.Random(seed).getrandbits(128), version=4)).upper()
    return Membership(company, mu, (f"{company.lower()}_ALL",))


def _index_users() -> None:
    for u in USERS:
        if u.refresh_token:
            USER_BY_TOKEN[u.refresh_token] = u
        for m in u.memberships:
            MEMBERSHIP_BY_MU[m.user_id] = (u, m)

# A placement moves along one of these paths; each change of a root moves it one step on.
STATUS_PATHS: tuple[tuple[str, ...], ...] = (
    ("QuotationRequest", "QuotedByUnderwriter", "FirmOrder", "Signed", "EndorsementInPreparation", "Endorsement"),
    ("QuotationRequest", "QuotationInPreparation", "QuotedByUnderwriter", "BindableQuote", "FirmOrder", "Signed"),
    ("NotFinalised", "MarketedOnly", "QuotationRequest", "QuotedByUnderwriter", "NotTakenUp"),
    ("QuotationRequest", "QuotationRequestDeclined"),
    ("QuotationRequest", "FirmOrder", "Signed", "EndorsementInPreparation", "EndorsementFinalised"),
    ("QuotationRequest", "QuotedByUnderwriter", "QuotationWithdrawn"),
)
CONTRACT_TYPES = (
    "Open Market",
    "Open Market",
    "Open Market",
    "Aviation Hull and Liability Insurance",
    "Marine Hull",
    "Cargo",
    "Property Damage and Business Interruption",
    "Non-Bulking Line Slip",
)
INSURED_FIRST = (
    "Dalston", "Thames", "Harbour", "Meridian", "Albion", "Northern", "Crown", "Baltic", "Solent",
    "Atlas", "Kestrel", "Windward", "Orion", "Cedar", "Granite", "Saffron", "Lyra", "Ouse", "Tyne",
)
INSURED_SECOND = (
    "Airways", "Shipping Co", "Logistics plc", "Energy Ltd", "Holdings", "Freight", "Marine Services",
    "Property Group", "Refining", "Cold Stores", "Ferries", "Aviation Ltd", "Mining SA", "Ports Ltd",
)
LIMITS = ("USD 5,000,000", "USD 10,000,000", "USD 20,000,000", "GBP 2,500,000", "EUR 15,000,000")
BROKERAGE = ("5", "7.5", "10", "12.5", "15", "17.5", "20", "22.5", "25", "27.5", "29.75", "30")
"""Total brokerage, % of the premium: the range London-market placements carry."""
RISK_CODES = ("H3", "V1", "MA", "P2", "X1", "AW", "B3")
UMR_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def mix(*parts: int) -> float:
    """A fast deterministic hash of integers to [0, 1)."""
    h = 0x811C9DC5
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 0x01000193) & 0xFFFFFFFF
        h ^= h >> 15
        h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
        h ^= h >> 12
        h = (h * 0x297A2D39) & 0xFFFFFFFF
        h ^= h >> 15
    return h / 4294967296.0


def stamp(t: dt.datetime, iso: bool = False) -> str:
    """Both timestamp formats the platform uses."""
    if iso:
        return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return t.strftime("%Y-%m-%d %H:%M:%S")


@dataclasses.dataclass(frozen=True)
class Tick:
    changed_fraction: float
    new_roots: int
    removed_fraction: float
    lines_changed_fraction: float = 0.0
    """Signed roots whose signed line set changes that day on its own: no placing revision moves."""


@dataclasses.dataclass(frozen=True)
class Root:
    """One placement (root risk) as it stands at the world's current tick."""

    index: int
    root_id: str
    broker: str  # company id
    broker_team: str
    carriers: tuple[str, ...]  # company ids it was shown to
    insured_name: str
    contract_type: str
    is_facility: bool
    facility_root: str | None
    umr: str
    limit: str
    path: tuple[str, ...]
    generation: int
    created_at: dt.datetime
    updated_at: dt.datetime
    inception: dt.date
    lead: str | None
    seed: int
    stage_times: tuple[dt.datetime, ...] = ()
    """When each generation took effect (index 0: creation); the placing timeline of the root."""
    line_times: tuple[dt.datetime, ...] = ()
    """When its signed lines changed after signing, on their own (the line set document alone)."""
    premium: Decimal = Decimal(0)
    """The 100% gross premium, in ``premium_currency`` (two decimals)."""
    premium_currency: str = "USD"
    brokerage: Decimal = Decimal(0)
    """Total brokerage, % of the premium."""

    @property
    def limit_currency(self) -> str:
        return self.limit.split()[0]

    @property
    def changed_at(self) -> dt.datetime:
        """The last change of anything the MI report shows: a placing revision or a signed line."""
        return max((self.updated_at, *self.line_times))

    @property
    def line_generation(self) -> int:
        return len(self.line_times)

    @property
    def status(self) -> str:
        return self.path[min(self.generation - 1, len(self.path) - 1)]

    @property
    def stage(self) -> int:
        return min(self.generation - 1, len(self.path) - 1)

    @property
    def channels(self) -> list[str]:
        return [f"{self.broker.lower()}_{self.broker_team}"] + [
            f"{c.lower()}_{CARRIER_TEAM[c]}" for c in self.carriers
        ]

    @property
    def placing_broker_channel(self) -> str:
        return f"{self.broker.lower()}_{self.broker_team}"

    def suffixes(self) -> list[str]:
        """Instance suffixes present at this stage: quote requests first, then the firm order."""
        out = ["QR1"]
        if len(self.path) > 3 and self.index % 3 == 0:
            out.append("QR2")
        if any(s in ("FirmOrder", "Signed") or s.startswith("Endorsement") for s in self.path[: self.stage + 1]):
            out.append("FO")
        if self.status.startswith("Endorsement"):
            out.append("FO::EN1")
        return out

    def instance_ids(self) -> list[str]:
        return [f"{self.root_id}::{s}" for s in self.suffixes()]

    def rev(self, doc_id: str, bump: int = 0) -> str:
        digest = hashlib.md5(f"{self.seed}:{doc_id}:{self.generation + bump}".encode()).hexdigest()
        return f"{self.generation + bump}-{digest}"

    def entered(self, *statuses: str, prefix: str = "") -> dt.datetime | None:
        """When the root first reached one of ``statuses`` (or a status starting with ``prefix``)."""
        for k, s in enumerate(self.path[: self.stage + 1]):
            if s in statuses or (prefix and s.startswith(prefix)):
                return self.stage_times[min(k, len(self.stage_times) - 1)] if self.stage_times else self.updated_at
        return None

    def created_for(self, suffix: str) -> dt.datetime:
        """createdAt of an instance: quote requests when the root was created, the firm order when
        it was made, an endorsement when the first endorsement began."""
        if suffix.startswith("FO::EN"):
            made = self.entered(prefix="Endorsement")
        elif suffix == "FO" or suffix.startswith("FO::"):  # the firm order, or a carrier's copy of it
            made = self.entered("FirmOrder", "Signed", prefix="Endorsement")
        elif suffix.startswith("SIGNED::"):
            made = self.signed_at()
        else:
            made = None
        return made or self.created_at

    def signed_at(self) -> dt.datetime | None:
        return self.entered("Signed", prefix="Endorsement")

    def has_lines(self) -> bool:
        return "FO" in self.suffixes()

    def is_signed(self) -> bool:
        return any(s == "Signed" or s.startswith("Endorsement") for s in self.path[: self.stage + 1])


class World:
    """The book of business for a seed, a scale and the ticks applied so far."""

    def __init__(self, seed: int = 1, scale: float = 1.0) -> None:
        self.seed = seed
        self.base_roots = max(1, int(round(ROOTS_AT_SCALE_1 * scale)))
        self.ticks: list[Tick] = []
        self._root = lru_cache(maxsize=4096)(self._make_root)
        self._visible: dict[str | None, tuple[int, ...]] = {}
        """Company -> the roots it sees at this tick: a platform answers from an index, not by walking
        every root per request (the benchmark shares its two cores with the sandbox)."""
        self._ids: dict[str, int] = {}
        self._ids_for = -1

    # -- time -------------------------------------------------------------------------------
    @property
    def tick(self) -> int:
        return len(self.ticks)

    @property
    def now(self) -> dt.datetime:
        return EPOCH + dt.timedelta(days=self.tick)

    def advance(self, changed_fraction: float = 0.05, new_roots: int = 10, removed_fraction: float = 0.0,
                lines_changed_fraction: float = 0.0) -> Tick:
        """Move the clock one day on: some roots change, some appear, some disappear, and the signed
        lines of some signed roots change without any placing revision changing."""
        t = Tick(float(changed_fraction), int(new_roots), float(removed_fraction), float(lines_changed_fraction))
        self.ticks.append(t)
        self._root.cache_clear()
        self._visible.clear()
        return t

    def advanced(self, ticks: int = 1, **changes: float) -> World:
        """A new world ``ticks`` days on; this one is left as it was for readers still using it."""
        new = World(self.seed)
        new.base_roots = self.base_roots
        new.ticks = list(self.ticks)
        for _ in range(ticks):
            new.advance(**changes)
        return new

    @property
    def total_roots(self) -> int:
        return self.base_roots + sum(t.new_roots for t in self.ticks)

    def _born_at(self, index: int) -> int:
        """The tick at which a root appeared (0 for the initial book)."""
        n = self.base_roots
        for k, t in enumerate(self.ticks, start=1):
            if index < n:
                return k - 1
            n += t.new_roots
        return self.tick if index < n else -1

    def exists(self, index: int) -> bool:
        born = self._born_at(index)
        if born < 0:
            return False
        for k in range(born + 1, self.tick + 1):
            if mix(self.seed, index, k, 7) < self.ticks[k - 1].removed_fraction:
                return False
        return True

    # -- membership without building the root -------------------------------------------------
    def broker_of(self, index: int) -> str:
        return "GAILBKR" if mix(self.seed, index, 1) < 0.75 else "ATLASBKR"

    def carriers_of(self, index: int) -> tuple[str, ...]:
        """Carriers a root was shown to; every placement reaches at least one market."""
        chosen = tuple(c for i, c in enumerate(CARRIER_SHARE) if mix(self.seed, index, 2, i) < CARRIER_SHARE[c])
        return chosen or ("NORTHGATEINS",)

    def visible_to(self, index: int, company_id: str) -> bool:
        if self.broker_of(index) == company_id:
            return True
        return company_id in self.carriers_of(index)

    def root_indexes(self, company_id: str | None = None) -> Iterator[int]:
        if company_id not in self._visible:
            self._visible[company_id] = tuple(
                i for i in range(self.total_roots)
                if (company_id is None or self.visible_to(i, company_id)) and self.exists(i))
        yield from self._visible[company_id]

    # -- building ------------------------------------------------------------------------------
    def root(self, index: int) -> Root:
        return self._root(index)

    def _make_root(self, index: int) -> Root:
        rng = random.Random(self.seed * 1_000_003 + index)
        root_id = "IC" + str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
        broker = self.broker_of(index)
        org = ORG_BY_ID[broker]
        broker_team = org.teams[index % len(org.teams)].team_id
        carriers = self.carriers_of(index)
        contract_type = rng.choice(CONTRACT_TYPES)
        is_facility = contract_type == "Non-Bulking Line Slip"
        facility_root = None
        if not is_facility and index > 20 and rng.random() < 0.05:
            facility_root = self._facility_for(index)
        path = STATUS_PATHS[rng.randrange(len(STATUS_PATHS))]
        created, gen, updated, times = self._timeline(index, rng, path)
        umr, name = _umr_and_name(rng, org.broker_code)
        signed = next((t for s, t in zip(path[:gen], times, strict=False)
                       if s == "Signed" or s.startswith("Endorsement")), None)
        lead = carriers[0] if carriers else None
        inception = (created + dt.timedelta(days=rng.randrange(10, 90))).date()
        limit = rng.choice(LIMITS)
        premium, currency, brokerage = self._money(index, limit)
        return Root(
            index=index,
            root_id=root_id,
            broker=broker,
            broker_team=broker_team,
            carriers=carriers,
            insured_name=name,
            contract_type=contract_type,
            is_facility=is_facility,
            facility_root=facility_root,
            umr=umr,
            limit=limit,
            path=path,
            generation=gen,
            created_at=created,
            updated_at=updated,
            inception=inception,
            lead=lead,
            seed=self.seed,
            stage_times=tuple(times),
            line_times=self._line_changes(index, signed),
            premium=premium,
            premium_currency=currency,
            brokerage=brokerage,
        )

    def _money(self, index: int, limit: str) -> tuple[Decimal, str, Decimal]:
        """(premium, its currency, brokerage %): a rate on line of 0.5% to 6% of the limit, now and
        then in pence; one placement in ten with a non-dollar limit is charged in dollars."""
        currency, amount = limit.split()
        rate = Decimal(50 + int(mix(self.seed, index, 21) * 550)) / Decimal(10000)
        premium = (Decimal(amount.replace(",", "")) * rate).quantize(Decimal(100))
        if mix(self.seed, index, 22) < 0.2:
            premium += Decimal(int(mix(self.seed, index, 23) * 100)) / 100
        if currency != "USD" and mix(self.seed, index, 24) < 0.1:
            currency = "USD"
        brokerage = Decimal(BROKERAGE[int(mix(self.seed, index, 25) * len(BROKERAGE))])
        return premium.quantize(Decimal("0.01")), currency, brokerage

    def _line_changes(self, index: int, signed: dt.datetime | None) -> tuple[dt.datetime, ...]:
        """The days on which root ``index``'s signed lines changed on their own, after it was signed."""
        if signed is None:
            return ()
        out = []
        for k in range(1, self.tick + 1):
            when = EPOCH + dt.timedelta(days=k - 1, seconds=int(mix(self.seed, index, k, 14) * 86399))
            if when > signed and mix(self.seed, index, k, 13) < self.ticks[k - 1].lines_changed_fraction:
                out.append(when)
        return tuple(out)

    def _timeline(self, index: int, rng: random.Random, path) -> tuple[dt.datetime, int, dt.datetime, list]:
        """(created, revision generation, updated, the time of each step) of root ``index`` at the current tick."""
        born = self._born_at(index)
        if born == 0:
            created = EPOCH - dt.timedelta(days=rng.randrange(30, 700), seconds=rng.randrange(86400))
            base_gen = rng.randrange(1, len(path) + 1)
        else:
            created = EPOCH + dt.timedelta(days=born - 1, seconds=rng.randrange(86400))
            base_gen = 1
        # Each step along the path takes 1 to 45 days; a revision a few hours after the last step.
        times = [created]
        for g in range(1, base_gen):
            step = dt.timedelta(days=1 + int(mix(self.seed, index, g, 11) * 45), seconds=int(mix(self.seed, index, g, 12) * 86399))
            times.append(times[-1] + step)
        # What happened by the day the root appeared is over by that day's end: a later tick never moves it.
        gen = base_gen
        updated = min(times[-1] + dt.timedelta(hours=rng.randrange(1, 400)), EPOCH + dt.timedelta(days=max(born, 0)))
        for k in range(max(born, 0) + 1, self.tick + 1):
            if mix(self.seed, index, k, 3) < self.ticks[k - 1].changed_fraction:
                gen += 1
                updated = EPOCH + dt.timedelta(days=k - 1, seconds=int(mix(self.seed, index, k, 4) * 86399))
                times.append(updated)
        updated = min(max(updated, created), self.now)
        return created, gen, updated, [min(t, updated) for t in times]

    def _facility_for(self, index: int) -> str | None:
        """The root id of an earlier facility (a declaration's associated facility), if any."""
        for j in range(index - 1, max(-1, index - 200), -1):
            rng = random.Random(self.seed * 1_000_003 + j)
            rng.getrandbits(128)
            if rng.choice(CONTRACT_TYPES) == "Non-Bulking Line Slip":
                return self.root_id_of(j)
        return None

    def root_id_of(self, index: int) -> str:
        return "IC" + str(uuid.UUID(int=random.Random(self.seed * 1_000_003 + index).getrandbits(128), version=4)).upper()

    def find_root(self, root_id: str) -> Root | None:
        """Look a live root up by its id (the id index is built once per size of the world)."""
        n = self.total_roots
        if self._ids_for != n:
            self._ids = {self.root_id_of(i): i for i in range(n)}
            self._ids_for = n
        index = self._ids.get(root_id)
        if index is None or not self.exists(index):
            return None
        return self.root(index)


def _umr_and_name(rng: random.Random, broker_code: str) -> tuple[str, str]:
    """A UMR and an insured's name, now and then with the stray spaces real payloads carry."""
    tail = "".join(rng.choice(UMR_CHARS) for _ in range(rng.randrange(4, 13)))
    umr = f"B{broker_code}{tail}"
    if rng.random() < 0.04:
        umr = " " + umr
    elif rng.random() < 0.02:
        umr = umr + " "
    name = f"{rng.choice(INSURED_FIRST)} {rng.choice(INSURED_SECOND)}"
    if rng.random() < 0.03:
        name = name + " "
    return umr, name
