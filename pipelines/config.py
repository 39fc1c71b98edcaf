"""The project's configuration: every environment variable it reads is declared, read and checked here.

Nothing else in the project reads ``os.environ``. Values are parsed when read, and a wrong one
raises ``ConfigError`` with one line naming the variable. There is no silent default that points
somewhere else: with no login configured, a sync is an error, unless the sandbox is asked for
(``WHITESPACE_SANDBOX=1``, ``whitespace-etl demo`` or ``whitespace-etl sandbox``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pipelines.client.errors import ConfigError
from pipelines.client.settings import Settings

LOGIN = {
    # resource field: (variable, meaning)
    "sync_url": ("WHITESPACE_SYNC_URL", "Sync Gateway root, `$ROOT/sync`"),
    "bucket": ("WHITESPACE_BUCKET", "Sync Gateway bucket"),
    "api_url": ("WHITESPACE_API_URL", "API root, `$ROOT/api`"),
    "refresh_token": ("WHITESPACE_REFRESH_TOKEN", "the renewable token copied from Whitespace's User Profile panel"),
    "user_ids": ("WHITESPACE_USER_IDS", "comma-separated MU ids to sync (skips discovery)"),
    "user_name": ("WHITESPACE_USER_NAME", "your name as Whitespace shows it: how a SUMO login finds its MU ids"),
    "timeout_seconds": ("WHITESPACE_TIMEOUT_SECONDS", "per-request timeout in seconds (default 60)"),
    "max_answer_mb": ("WHITESPACE_MAX_ANSWER_MB", "the largest API answer taken, in MB (4,000): a larger one fails "
                                                  "that request only, with an error saying so"),
}
REQUIRED = ("sync_url", "bucket", "api_url", "refresh_token")
"""The login's fields without which nothing can be fetched."""

LOGINS = {
    "logins": ("WHITESPACE_LOGINS", "comma-separated names of several logins to the same platform (instead of "
                                    "`WHITESPACE_REFRESH_TOKEN`): each one's token, user name and MU ids in the three "
                                    "variables below"),
}
PER_LOGIN = {
    # login field: (variable pattern, meaning); <NAME> is the login's name in capitals
    "refresh_token": ("WHITESPACE_LOGIN_<NAME>_REFRESH_TOKEN", "that login's renewable token (required)"),
    "user_name": ("WHITESPACE_LOGIN_<NAME>_USER_NAME", "its user's name as Whitespace shows it (a SUMO login)"),
    "user_ids": ("WHITESPACE_LOGIN_<NAME>_USER_IDS", "its MU ids, comma-separated (skips discovery)"),
}
LOGIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

WAREHOUSE = {
    "path": ("WHITESPACE_WAREHOUSE", "the DuckDB file (default `data/warehouse.duckdb`); with a URL below, where the raw landing and the marts' Parquet go (`raw/`, `marts/` beside it)"),
    "url": ("WHITESPACE_WAREHOUSE_URL", "the warehouse in PostgreSQL instead: a SQLAlchemy URL `postgresql+psycopg2://user:password@host:port/db` (a secret if it holds a password)"),
    "lock_wait_seconds": ("WHITESPACE_LOCK_WAIT_SECONDS", "how long a writer waits for a locked warehouse (300)"),
    "memory_limit": ("WHITESPACE_DUCKDB_MEMORY", "DuckDB's working memory before it spills to disk (768MB)"),
    "open_item_days": ("WHITESPACE_OPEN_ITEM_DAYS", "open items: quotation / firm-order placements older than this (30)"),
    "reconcile_days": ("WHITESPACE_RECONCILE_DAYS", "every root's contract and lines are fetched again this often, in days (7; 0: never)"),
    "max_shrink": ("WHITESPACE_MAX_SHRINK", "the share of an organisation's risks one answer may drop before it is refused (0.5)"),
    "storage_version": ("WHITESPACE_DUCKDB_STORAGE_VERSION", "DuckDB storage format of a new warehouse file: `v1.4.0` (default; DuckDB 1.4 LTS readers, the ones BI tools embed, open it) or `latest` (DuckDB 2 readers only)"),
}
OTHER = {
    "sandbox": ("WHITESPACE_SANDBOX", "`1`: use the local sandbox instead of a login (for trying `dagster dev`)"),
    "sandbox_scale": ("WHITESPACE_SANDBOX_SCALE", "the size of that sandbox's book (1: about 1,500 / 450 / 200 risks per organisation)"),
    "dashboard_cache_seconds": ("WHITESPACE_DASHBOARD_CACHE_SECONDS", "how long the dashboard reuses one read (15)"),
    "dagster_home": ("DAGSTER_HOME", "where `whitespace-etl sync` records its runs (`.dagster/`)"),
}
OPERATIONS = {
    "raw_keep_days": ("WHITESPACE_RAW_KEEP_DAYS", "`whitespace-etl prune` deletes landed answers older than this, in days, unless a rebuild needs them (30)"),
    "fresh_hours": ("WHITESPACE_FRESH_HOURS", "a table or mart not updated (or confirmed unchanged) for this many hours is stale (26)"),
    "webhook_url": ("WHITESPACE_ALERT_WEBHOOK_URL", "a Slack-compatible incoming webhook that alerts are posted to (a secret)"),
    "smtp_host": ("WHITESPACE_ALERT_SMTP_HOST", "the mail server alerts are sent through"),
    "smtp_port": ("WHITESPACE_ALERT_SMTP_PORT", "its port (587 with `starttls`, 465 with `ssl`, 25 with `none`)"),
    "smtp_tls": ("WHITESPACE_ALERT_SMTP_TLS", "`starttls` (default), `ssl`, or `none` (a relay on the same host only)"),
    "smtp_user": ("WHITESPACE_ALERT_SMTP_USER", "the mail server login, if it needs one"),
    "smtp_password": ("WHITESPACE_ALERT_SMTP_PASSWORD", "its password (a secret)"),
    "email_from": ("WHITESPACE_ALERT_EMAIL_FROM", "the alerts' sender address"),
    "email_to": ("WHITESPACE_ALERT_EMAIL_TO", "comma-separated recipients of the alerts"),
    "mute": ("WHITESPACE_ALERT_MUTE", "comma-separated check names, asset names or `run_failure` that send no alert"),
}
VARIABLES = {name: meaning for table in (LOGIN, LOGINS, PER_LOGIN, WAREHOUSE, OPERATIONS, OTHER)
             for name, meaning in table.values()}
"""Every variable the project reads, with its meaning: the README's configuration table lists them all."""

DEFAULT_WAREHOUSE = Path("data/warehouse.duckdb")
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_ANSWER_MB = 4000.0
"""Ten times the risk list of a 1,000,000-risk book (about 400 MB): no real answer comes near it."""
DEFAULT_LOCK_WAIT = 300.0
DEFAULT_MEMORY = "768MB"
"""DuckDB's working memory; past it, it spills beside the warehouse, so a load of a million risks stays under 1 GiB."""
DEFAULT_OPEN_ITEM_DAYS = 30
DEFAULT_RECONCILE_DAYS = 7.0
DEFAULT_MAX_SHRINK = 0.5
"""An answer that drops more than half an organisation's risks (an empty one included) is refused."""
DEFAULT_DASHBOARD_CACHE = 15.0
DEFAULT_RAW_KEEP_DAYS = 30.0
DEFAULT_FRESH_HOURS = 26.0
"""A day, and the daily schedule's own slack: a sync at 06:00 that ends at 06:20 the next day is not late."""
DEFAULT_STORAGE_VERSION = "v1.4.0"
"""The DuckDB 1.4 LTS storage format: DuckDB 2 writes a newer one by default, which the DuckDB 1.x
readers in today's BI tools (Evidence, Superset, Metabase) refuse."""


def environ() -> Mapping[str, str]:
    """The process environment: the one place the project reads it."""
    return os.environ


def _get(env: Mapping[str, str] | None, name: str) -> str:
    return (environ() if env is None else env).get(name, "").strip()


def number(name: str, value: str | float | int, default: float, *, integer: bool = False) -> float:
    """A positive number (or zero) from a variable's text; ``default`` when empty; else a ConfigError."""
    if value in ("", None):
        return default
    try:
        parsed = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, not {str(value)!r}.") from None
    if parsed < 0:
        raise ConfigError(f"{name} must not be negative, not {str(value)!r}.")
    return parsed


def sandbox_requested(env: Mapping[str, str] | None = None) -> bool:
    """``WHITESPACE_SANDBOX`` set to a true value: the only way production code reaches the sandbox."""
    value = _get(env, "WHITESPACE_SANDBOX").lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(f"WHITESPACE_SANDBOX must be 1 or 0, not {value!r}.")


def login_variables_set(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resource field -> variable, for the login variables that are set (their values are not read here)."""
    return {field: name for field, (name, _) in LOGIN.items() if _get(env, name)}


def login_names(env: Mapping[str, str] | None = None) -> list[str]:
    """The names in ``WHITESPACE_LOGINS`` (checked: lower-case words, each once); empty: the one login of
    ``WHITESPACE_REFRESH_TOKEN``. Both at once is a ConfigError: which token is meant would be a guess."""
    text = _get(env, "WHITESPACE_LOGINS")
    if not text:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not LOGIN_NAME.match(n)]
    if bad:
        raise ConfigError(f"WHITESPACE_LOGINS holds {bad[0]!r}: a login's name is a lower-case word "
                          "(letters, digits, _), e.g. acme,northgate.")
    if len(set(names)) != len(names):
        raise ConfigError("WHITESPACE_LOGINS names a login twice.")
    if _get(env, "WHITESPACE_REFRESH_TOKEN"):
        raise ConfigError("WHITESPACE_LOGINS and WHITESPACE_REFRESH_TOKEN are both set: with several logins, "
                          "each token is in WHITESPACE_LOGIN_<NAME>_REFRESH_TOKEN; unset one of them.")
    return names


def login_variable(name: str, field: str) -> str:
    """The variable of one login's field: ``login_variable("acme", "refresh_token")`` is
    ``WHITESPACE_LOGIN_ACME_REFRESH_TOKEN``."""
    return PER_LOGIN[field][0].replace("<NAME>", name.upper())


def per_login_variables_set(name: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Login field -> variable, for one named login's variables that are set; its token must be."""
    found = {field: login_variable(name, field) for field in PER_LOGIN if _get(env, login_variable(name, field))}
    if "refresh_token" not in found:
        raise ConfigError(f"WHITESPACE_LOGINS names the login {name!r} but {login_variable(name, 'refresh_token')} "
                          "is not set: set it to that login's renewable token (README, Several logins).")
    return found


def login_from_values(values: Mapping[str, str], max_concurrency: int = 8, login: str = "") -> Settings:
    """A checked login from field values (as the resource holds them, or as read from the environment):
    every missing or wrong value is a ConfigError naming its variable. ``login``: one of several logins,
    whose own variables hold its token, user name and MU ids."""
    def variable(field: str) -> str:
        return login_variable(login, field) if login and field in PER_LOGIN else LOGIN[field][0]

    missing = [variable(f) for f in REQUIRED if not str(values.get(f) or "").strip()]
    if len(missing) == len(REQUIRED):
        raise ConfigError(
            "No Whitespace login is configured: set " + ", ".join(LOGIN[f][0] for f in REQUIRED)
            + " (README, Configuration), or WHITESPACE_SANDBOX=1 to use the local sandbox.")
    if missing:
        raise ConfigError(f"Missing {', '.join(missing)}: a login needs all of "
                          + ", ".join(variable(f) for f in REQUIRED) + " (README, Configuration).")
    return Settings.from_values(
        str(values["sync_url"]).strip(), str(values["bucket"]).strip(), str(values["api_url"]).strip(),
        str(values["refresh_token"]).strip(), str(values.get("user_ids") or ""),
        str(values.get("user_name") or "").strip() or None,
        timeout=number("WHITESPACE_TIMEOUT_SECONDS", str(values.get("timeout_seconds") or ""), DEFAULT_TIMEOUT),
        max_concurrency=max_concurrency, token_variable=variable("refresh_token"),
        max_answer_bytes=int(_positive("WHITESPACE_MAX_ANSWER_MB", str(values.get("max_answer_mb") or ""),
                                       DEFAULT_MAX_ANSWER_MB, "4000") * 1_000_000),
    )



@dataclasses.dataclass(frozen=True)
class WarehouseConfig:
    """Where the warehouse lives and how it is opened."""

    path: Path = DEFAULT_WAREHOUSE
    url: str = dataclasses.field(default="", repr=False)
    """A PostgreSQL warehouse (``WHITESPACE_WAREHOUSE_URL``); empty: the DuckDB file at ``path``."""
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT
    memory_limit: str = DEFAULT_MEMORY
    open_item_days: int = DEFAULT_OPEN_ITEM_DAYS
    max_shrink: float = DEFAULT_MAX_SHRINK
    reconcile_days: float = DEFAULT_RECONCILE_DAYS
    storage_version: str = DEFAULT_STORAGE_VERSION

    @property
    def reconcile_every(self) -> dt.timedelta | None:
        """How often every root's details are fetched again; None: never (only what changed)."""
        return dt.timedelta(days=self.reconcile_days) if self.reconcile_days > 0 else None

    @property
    def raw_dir(self) -> Path:
        """The raw landing: every answer as received, beside the warehouse file."""
        return self.path.parent / "raw"

    @property
    def marts_dir(self) -> Path:
        """The marts' Parquet export, beside the warehouse file."""
        return self.path.parent / "marts"


def warehouse(env: Mapping[str, str] | None = None) -> WarehouseConfig:
    values = {f: _get(env, name) for f, (name, _) in WAREHOUSE.items()}
    return warehouse_from_values(values)


def warehouse_from_values(values: Mapping[str, str | float | int]) -> WarehouseConfig:
    memory = str(values.get("memory_limit") or "").strip() or DEFAULT_MEMORY
    return WarehouseConfig(
        path=Path(str(values.get("path") or "").strip() or DEFAULT_WAREHOUSE),
        url=_warehouse_url(str(values.get("url") or "").strip()),
        lock_wait_seconds=number("WHITESPACE_LOCK_WAIT_SECONDS", values.get("lock_wait_seconds", ""),
                                 DEFAULT_LOCK_WAIT),
        memory_limit=memory,
        open_item_days=int(number("WHITESPACE_OPEN_ITEM_DAYS", values.get("open_item_days", ""),
                                  DEFAULT_OPEN_ITEM_DAYS, integer=True)),
        max_shrink=_share("WHITESPACE_MAX_SHRINK", values.get("max_shrink", "")),
        reconcile_days=number("WHITESPACE_RECONCILE_DAYS", values.get("reconcile_days", ""), DEFAULT_RECONCILE_DAYS),
        storage_version=_storage_version(str(values.get("storage_version") or "").strip()),
    )


def _warehouse_url(value: str) -> str:
    """A PostgreSQL URL as SQLAlchemy writes it; the driver is psycopg2 (dagster-postgres's), named or not."""
    if not value:
        return ""
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in ("postgresql", "postgresql+psycopg2", "postgres"):
        raise ConfigError("WHITESPACE_WAREHOUSE_URL is a PostgreSQL URL such as "
                          "postgresql+psycopg2://user:password@host:5432/warehouse, not one starting "
                          f"{scheme + '://' if scheme else 'without a scheme'}.")
    return "postgresql+psycopg2://" + value.split("://", 1)[1]


def url_password(url: str) -> str:
    """The password inside a database URL ('' when none)."""
    from urllib.parse import unquote, urlsplit

    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def _storage_version(value: str) -> str:
    if not value:
        return DEFAULT_STORAGE_VERSION
    if value != "latest" and not re.fullmatch(r"v\d+\.\d+\.\d+", value):
        raise ConfigError(f"WHITESPACE_DUCKDB_STORAGE_VERSION is a DuckDB version such as v1.4.0, or latest; not {value!r}.")
    return value


def _share(name: str, value: str | float) -> float:
    share = number(name, value, DEFAULT_MAX_SHRINK)
    if share > 1:
        raise ConfigError(f"{name} is a share between 0 and 1 (0.5: half), not {value!r}.")
    return share


def warehouse_variables_set(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resource field -> variable, for the warehouse variables that are set."""
    return {field: name for field, (name, _) in WAREHOUSE.items() if _get(env, name)}


def dashboard_cache_seconds(env: Mapping[str, str] | None = None) -> float:
    return number("WHITESPACE_DASHBOARD_CACHE_SECONDS", _get(env, "WHITESPACE_DASHBOARD_CACHE_SECONDS"),
                  DEFAULT_DASHBOARD_CACHE)


def dagster_home(env: Mapping[str, str] | None = None) -> Path | None:
    """``DAGSTER_HOME`` when set."""
    value = _get(env, "DAGSTER_HOME")
    return Path(value) if value else None


def _above_zero(env: Mapping[str, str] | None, name: str, default: float, hint: str) -> float:
    return _positive(name, _get(env, name), default, hint)


def _positive(name: str, text: str, default: float, hint: str) -> float:
    value = number(name, text, default)
    if value == 0:
        raise ConfigError(f"{name} must be more than 0 ({hint}).")
    return value


def sandbox_scale(env: Mapping[str, str] | None = None) -> float:
    return _above_zero(env, "WHITESPACE_SANDBOX_SCALE", 1.0, "1: the demo's book")


def raw_keep_days(env: Mapping[str, str] | None = None) -> float:
    return number("WHITESPACE_RAW_KEEP_DAYS", _get(env, "WHITESPACE_RAW_KEEP_DAYS"), DEFAULT_RAW_KEEP_DAYS)


def fresh_hours(env: Mapping[str, str] | None = None) -> float:
    return _above_zero(env, "WHITESPACE_FRESH_HOURS", DEFAULT_FRESH_HOURS, "26: a day and the schedule's slack")


SECRETS = ("WHITESPACE_REFRESH_TOKEN", "WHITESPACE_ALERT_WEBHOOK_URL", "WHITESPACE_ALERT_SMTP_PASSWORD")


def secret_values(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of the secret variables that are set (every login's token included): masked in anything
    the project sends or logs."""
    names = [*SECRETS, *(login_variable(n, "refresh_token") for n in _names_unchecked(env))]
    url = _get(env, "WHITESPACE_WAREHOUSE_URL")
    return tuple(v for v in (*(_get(env, name) for name in names), url_password(url)) if v)


def _names_unchecked(env: Mapping[str, str] | None) -> list[str]:
    return [n.strip() for n in _get(env, "WHITESPACE_LOGINS").split(",") if LOGIN_NAME.match(n.strip())]


SMTP_TLS = {"starttls": 587, "ssl": 465, "none": 25}


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    """Where alerts go. The webhook URL and the SMTP password are secrets: never in a repr or a log."""

    webhook_url: str = dataclasses.field(default="", repr=False)
    smtp_host: str = ""
    smtp_port: int = 0
    smtp_tls: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = dataclasses.field(default="", repr=False)
    email_from: str = ""
    email_to: tuple[str, ...] = ()
    mute: frozenset[str] = frozenset()

    @property
    def email(self) -> bool:
        return bool(self.smtp_host)

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url) or self.email

    def channels(self) -> list[str]:
        """What is configured, without a secret: for a log line."""
        return ([f"e-mail via {self.smtp_host}:{self.smtp_port} to {', '.join(self.email_to)}"] if self.email else []) + (
            ["webhook"] if self.webhook_url else [])


def alerts(env: Mapping[str, str] | None = None) -> AlertConfig:
    """The alert channels, checked: an incomplete e-mail setting or a webhook that is not a URL is a ConfigError."""
    def get(field: str) -> str:
        return _get(env, OPERATIONS[field][0])

    webhook = get("webhook_url")
    if webhook and not re.match(r"^https?://[^/\s]+", webhook):
        raise ConfigError("WHITESPACE_ALERT_WEBHOOK_URL must be an http(s) URL.")
    tls = get("smtp_tls").lower() or "starttls"
    if tls not in SMTP_TLS:
        raise ConfigError(f"WHITESPACE_ALERT_SMTP_TLS must be starttls, ssl or none, not {tls!r}.")
    host = get("smtp_host")
    to = tuple(a.strip() for a in get("email_to").split(",") if a.strip())
    if host and not (to and get("email_from")):
        raise ConfigError("WHITESPACE_ALERT_SMTP_HOST is set: WHITESPACE_ALERT_EMAIL_FROM and "
                          "WHITESPACE_ALERT_EMAIL_TO must be set too.")
    if (to or get("smtp_user")) and not host:
        raise ConfigError("Alert e-mail settings are set but WHITESPACE_ALERT_SMTP_HOST is not.")
    port = int(number("WHITESPACE_ALERT_SMTP_PORT", get("smtp_port"), SMTP_TLS[tls], integer=True))
    return AlertConfig(webhook_url=webhook, smtp_host=host, smtp_port=port, smtp_tls=tls, smtp_user=get("smtp_user"),
                       smtp_password=get("smtp_password"), email_from=get("email_from"), email_to=to,
                       mute=frozenset(m.strip() for m in get("mute").split(",") if m.strip()))
