"""Dagster resources: the Whitespace login and the warehouse, configured from ``pipelines.config``.

``from_environment`` wires every variable that is set with ``dg.EnvVar``, so the UI shows the
variable's name, never its value, and the value is read where the run executes. A run whose process
lacks the login fails with a message naming the variables; it never falls back to the sandbox.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dagster as dg
import duckdb

from pipelines import config
from pipelines.client import RefreshTokenRejected, Settings, WhitespaceClient, WhitespaceError, stops_everything
from pipelines.warehouse import db

T = TypeVar("T")

class Login(dg.Config):
    """One of several logins (``WHITESPACE_LOGINS``): its name, and its token, user name and MU ids (set
    them only through ``dg.EnvVar``: the UI then shows the variables' names, never their values)."""

    name: str
    refresh_token: str = ""
    user_name: str = ""
    user_ids: str = ""


class WhitespaceResource(dg.ConfigurableResource):
    """The Whitespace login: Sync Gateway, bucket, API root and renewable token (set the token only
    through ``dg.EnvVar``), the MU ids or user name that select organisations, and the timeout.
    ``sandbox=True`` serves an embedded sandbox of the platform instead, for trying the project."""

    sync_url: str = ""
    bucket: str = ""
    api_url: str = ""
    refresh_token: str = ""
    user_ids: str = ""
    user_name: str = ""
    timeout_seconds: str = ""
    """Per-request timeout in seconds; empty means 60."""
    max_answer_mb: str = ""
    """The largest API answer taken, in MB; empty means 4,000."""
    max_concurrency: int = 8
    logins: list[Login] = []
    """Several logins to the same platform (the URLs, bucket and timeout above are shared); empty: the
    one login of the fields above."""
    sandbox: bool = False
    sandbox_scale: float = 1.0
    sandbox_seed: int = 1

    def login_names(self) -> list[str]:
        """The configured logins' names, in order; ``[""]`` for the one login."""
        return [login.name for login in self.logins] or [""]

    def settings(self, login: str = "") -> Settings:
        """The checked settings of ``login`` ("": the one login); a ConfigError naming what is missing or wrong."""
        values = {f: getattr(self, f) for f in config.LOGIN}
        if self.logins and not login:
            raise config.ConfigError(
                "Several logins are configured (WHITESPACE_LOGINS), so a partition's key is <login>:<MU id>; this "
                "one names no login (it was made before WHITESPACE_LOGINS was set: delete it in the UI).")
        if login:
            chosen = next((x for x in self.logins if x.name == login), None)
            if chosen is None:
                raise config.ConfigError(
                    f"No login named {login!r} is configured: WHITESPACE_LOGINS names "
                    f"{', '.join(self.login_names()) if self.logins else 'none'}.")
            values.update(refresh_token=chosen.refresh_token, user_name=chosen.user_name, user_ids=chosen.user_ids)
        return config.login_from_values(values, self.max_concurrency, login)

    @contextlib.contextmanager
    def clients(self) -> Iterator[Callable[[str], WhitespaceClient]]:
        """Clients for several organisations in a row: ``get(login)`` opens each login's client once (one token
        refresh, not one per organisation); all are closed at the end."""
        with contextlib.ExitStack() as stack:
            opened: dict[str, WhitespaceClient] = {}

            def get(login: str = "") -> WhitespaceClient:
                if login not in opened:
                    opened[login] = stack.enter_context(self.client(login))
                return opened[login]
            yield get

    @contextlib.contextmanager
    def client(self, login: str = "") -> Iterator[WhitespaceClient]:
        """A client of ``login`` ("": the one login)."""
        if not self.sandbox:
            with WhitespaceClient(self.settings(login)) as client:
                yield client
            return
        if any(getattr(self, f) for f in config.REQUIRED) or self.logins:
            raise config.ConfigError("WHITESPACE_SANDBOX=1 and a Whitespace login are both set: unset one of them.")
        from sandbox import SandboxServer  # only when the sandbox was asked for

        with SandboxServer(seed=self.sandbox_seed, scale=self.sandbox_scale) as server:
            values = {**server.login(), "timeout_seconds": self.timeout_seconds, "max_answer_mb": self.max_answer_mb}
            with WhitespaceClient(config.login_from_values(values, self.max_concurrency)) as client:
                yield client

    def each_login(self, work: Callable[[WhitespaceClient, str], T], log: Callable[[str], object] = print
                   ) -> tuple[dict[str, T], dict[str, str]]:
        """``work(client, login)`` for every login: (login -> result, login -> ``Error: message`` of the
        logins that failed). With several logins, one that fails as every later request of it would (a
        rejected token) is logged and the others go on; an error of the only login, or of every one, is
        raised."""
        names = self.login_names()
        done: dict[str, T] = {}
        failed: dict[str, str] = {}
        first: WhitespaceError | None = None
        for login in names:
            try:
                with self.client(login) as client:
                    done[login] = work(client, login)
            except WhitespaceError as exc:
                if len(names) == 1 or not stops_everything(exc):
                    raise
                failed[login] = f"{type(exc).__name__}: {exc}"
                log(f"Login {login!r} failed: {failed[login]}")
                first = first or exc
        if first is not None and not done:
            raise first
        return done, failed

    @contextlib.contextmanager
    def working_client(self) -> Iterator[WhitespaceClient]:
        """A client of the first login whose renewable token Sync Gateway accepts, for what every login
        sees alike (``/api/shared/corporate`` lists every company on the platform); each login's own
        rejection is raised when none works."""
        rejected: list[RefreshTokenRejected] = []
        for name in self.login_names():
            with self.client(name) as client:
                try:
                    client.tokens.current()
                except RefreshTokenRejected as exc:
                    rejected.append(exc)
                    continue
                yield client
                return
        raise rejected[0]


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (``WHITESPACE_WAREHOUSE``, default ``data/warehouse.duckdb``), with the
    raw landing in ``raw/`` and the marts' Parquet export in ``marts/`` beside it."""

    path: str = ""
    url: str = ""
    lock_wait_seconds: str = ""
    memory_limit: str = ""
    open_item_days: str = ""
    max_shrink: str = ""
    reconcile_days: str = ""
    storage_version: str = ""

    def settings(self) -> config.WarehouseConfig:
        return config.warehouse_from_values({f: getattr(self, f) for f in config.WAREHOUSE})

    def db_path(self) -> Path:
        return self.settings().path

    def raw_path(self) -> Path:
        return self.settings().raw_dir

    def marts_path(self) -> Path:
        return self.settings().marts_dir

    def session(self, read_only: bool = False, scope=None) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """``scope``: what a load reads and writes (``postgres.Scope``), for a PostgreSQL warehouse."""
        return db.session(self.settings(), read_only=read_only, scope=scope)

    def sessions(self) -> contextlib.AbstractContextManager:
        """Sessions for several loads in a row: ``with warehouse.sessions() as open: with open(scope) as conn``."""
        return db.sessions(self.settings())


def from_environment() -> dict[str, dg.ConfigurableResource]:
    """The resources as the environment configures them, each set variable wired by name."""
    warehouse = WarehouseResource(**{f: dg.EnvVar(name) for f, name in config.warehouse_variables_set().items()})
    login = {f: dg.EnvVar(name) for f, name in config.login_variables_set().items()}
    logins = [Login(name=name, **{f: dg.EnvVar(var) for f, var in config.per_login_variables_set(name).items()})
              for name in config.login_names()]
    sandbox = config.sandbox_requested()
    extra = {"sandbox_scale": config.sandbox_scale()} if sandbox else {}
    return {"whitespace": WhitespaceResource(sandbox=sandbox, logins=logins, **extra, **login), "warehouse": warehouse}


def for_sandbox(server, warehouse: config.WarehouseConfig | None = None, logins: dict[str, str] | None = None,
                **login: str) -> dict[str, dg.ConfigurableResource]:
    """Resources bound to a running sandbox (the demo, the tests): plain values, no environment.
    ``logins``: several logins, name -> the sandbox's renewable token of each."""
    values = {**server.login(), **login}
    if logins:
        named = [Login(name=name, **{f: v for f, v in server.login(token).items() if f in config.PER_LOGIN})
                 for name, token in logins.items()]
        values = {**{f: v for f, v in values.items() if f not in config.PER_LOGIN}, "logins": named}
    return {"whitespace": WhitespaceResource(**values), "warehouse": for_warehouse(warehouse or config.WarehouseConfig())}


def for_warehouse(warehouse: config.WarehouseConfig) -> WarehouseResource:
    return WarehouseResource(path=str(warehouse.path), url=warehouse.url, lock_wait_seconds=str(warehouse.lock_wait_seconds),
                             memory_limit=warehouse.memory_limit, open_item_days=str(warehouse.open_item_days),
                             max_shrink=str(warehouse.max_shrink), reconcile_days=str(warehouse.reconcile_days),
                             storage_version=warehouse.storage_version)
