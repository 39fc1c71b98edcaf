"""``whitespace-etl``: the sandbox, a headless sync, the demo (sandbox plus sync), and the warehouse's tools.

Every failure a user can cause or meet (a setting, the login, the network, a locked warehouse, a
full disk) ends in one ``error:`` line that says what to do, and a non-zero exit; ``--debug`` shows
the traceback and the runs' logs.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import sys
import warnings
from pathlib import Path

from pipelines import config
from pipelines.client import WhitespaceError, redact


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox import BUCKET, SINGLE_REFRESH_TOKEN, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, Faults, SandboxServer
    from sandbox.world import add_logins, add_organisations

    if args.organisations:
        add_organisations(args.organisations)
    extra_logins = add_logins(args.logins, args.login_organisations) if args.logins else []
    faults = Faults(latency_ms=args.latency_ms, legacy_refresh_errors=args.legacy_refresh_errors)
    server = SandboxServer(args.host, args.port, seed=args.seed, scale=args.scale, token_lifetime=args.token_lifetime,
                           faults=faults)
    print(f"Whitespace sandbox on {server.url} (seed {args.seed}, scale {args.scale})")
    print(f"  WHITESPACE_SYNC_URL={server.sync_url}")
    print(f"  WHITESPACE_BUCKET={BUCKET}")
    print(f"  WHITESPACE_API_URL={server.api_url}")
    print(f"  WHITESPACE_REFRESH_TOKEN={SUMO_REFRESH_TOKEN}   (SUMO login; WHITESPACE_USER_NAME='{SUMO_USER_NAME}')")
    print(f"  or WHITESPACE_REFRESH_TOKEN={SINGLE_REFRESH_TOKEN}   (single-organisation login)")
    for token, name in extra_logins:
        print(f"  WHITESPACE_LOGIN_<NAME>_REFRESH_TOKEN={token}   (WHITESPACE_LOGIN_<NAME>_USER_NAME='{name}', "
              f"{args.login_organisations} organisations)")
    print("  admin: POST /_sandbox/faults, /_sandbox/advance, /_sandbox/revoke, /_sandbox/reset; GET /_sandbox/stats")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


def _run_sync(args: argparse.Namespace, demo: bool) -> int:
    from pipelines.app import sync
    from pipelines.defs import resources
    from pipelines.defs.build import build
    from pipelines.warehouse import postgres

    home = sync.dagster_home()
    warehouse = config.warehouse()
    writers = getattr(args, "writers", 1)
    if writers < 1:
        raise config.ConfigError(f"--writers is at least 1, not {writers}.")
    if writers > 1 and not warehouse.url:
        raise config.ConfigError(f"--writers {writers}: more than one writer at once needs the warehouse in "
                                 "PostgreSQL (WHITESPACE_WAREHOUSE_URL); the DuckDB file has one writer.")
    if warehouse.url:  # an unreachable database is said before anything runs
        postgres.ensure_schema(warehouse.url)
    config.alerts()  # a wrong alert setting is said now, not on the daemon's next tick
    with contextlib.ExitStack() as stack:
        if demo:
            from sandbox import SandboxServer

            # The platform remembers what its MI report already sent; so does the demo's sandbox, beside the warehouse.
            server = stack.enter_context(SandboxServer(scale=args.scale,
                                                       state_file=warehouse.path.parent / "sandbox-state.json"))
            print(f"Sandbox of the Whitespace API on {server.url} (seed 1, scale {args.scale})")
            bound = resources.for_sandbox(server, warehouse)
        else:
            bound = resources.from_environment()
            if not bound["whitespace"].sandbox:  # a bad setting fails here, first
                whitespace = bound["whitespace"].process_config_and_initialize()
                for login in whitespace.login_names():
                    whitespace.settings(login)
        instance = stack.enter_context(sync.open_instance(home))
        sync.allow_writers(instance, writers)
        where = f"PostgreSQL {postgres.describe(warehouse.url)}" if warehouse.url else str(warehouse.path)
        print(f"Dagster home {home}; warehouse {where}")
        outcomes = sync.sync(instance, build(bound), everything=args.all, debug=args.debug,
                             accept_shrink=args.accept_shrink, full=args.full, writers=writers)
    failed = [o for o in outcomes if not o.ok]
    if warehouse.path.exists() or warehouse.url:
        print(sync.summary(warehouse))
    if failed:
        print(f"\nerror: {len(failed)} of {len(outcomes)} runs failed:", file=sys.stderr)
        for outcome in failed:
            print(f"  {outcome.label}: {outcome.note}", file=sys.stderr)
        return 1
    print(f"\nDone. Browse the runs: DAGSTER_HOME={home} dagster dev   (from this directory)")
    return 0


def _sync(args: argparse.Namespace) -> int:
    return _run_sync(args, demo=False)


def _demo(args: argparse.Namespace) -> int:
    return _run_sync(args, demo=True)


def _rebuild(args: argparse.Namespace) -> int:
    from pipelines.app import sync

    warehouse = config.warehouse()
    _file_only(warehouse, 'rebuild')
    print(f"Rebuilding {warehouse.path} from {warehouse.raw_dir} (no API call):")
    sync.rebuild(warehouse)
    print(sync.summary(warehouse))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from pipelines.app import retention

    warehouse = config.warehouse()
    if not warehouse.url and not warehouse.path.exists():
        return _no_warehouse(warehouse.path)
    keep = config.raw_keep_days() if args.keep_days is None else config.number("--keep-days", args.keep_days, 0)
    pruned = retention.prune(warehouse, keep, dry_run=args.dry_run)
    if args.verbose:
        for path in pruned.deleted:
            print(f"  {path}")
    return 0


def _alert_test(args: argparse.Namespace) -> int:
    from pipelines.defs import alerts

    settings = config.alerts()
    if not settings.configured:
        print("No alert channel is configured: set WHITESPACE_ALERT_WEBHOOK_URL, or WHITESPACE_ALERT_SMTP_HOST with "
              "WHITESPACE_ALERT_EMAIL_FROM and WHITESPACE_ALERT_EMAIL_TO (README, Operating it).")
        return 2
    reached = alerts.send(alerts.Alert("test alert", "The alert channels of whitespace-etl work."), settings,
                          lambda message: print(f"error: {message}"))
    print(f"Sent to {', '.join(reached) or 'no channel'} of: {'; '.join(settings.channels())}")
    return 0 if len(reached) == len(settings.channels()) else 1


def _migrate_storage(args: argparse.Namespace) -> int:
    from pipelines.warehouse import db

    warehouse = config.warehouse()
    _file_only(warehouse, 'migrate-storage')
    if not warehouse.path.exists():
        return _no_warehouse(warehouse.path)
    before, after = db.migrate_storage(warehouse, log=lambda *_: None)
    print(f"{warehouse.path}: DuckDB storage {before} -> {after}")
    return 0


def _file_only(warehouse: config.WarehouseConfig, command: str) -> None:
    """The commands that work on the DuckDB file say so when the warehouse is in PostgreSQL."""
    if warehouse.url:
        raise config.ConfigError(f"'whitespace-etl {command}' works on the DuckDB warehouse file; this one is in "
                                 "PostgreSQL (WHITESPACE_WAREHOUSE_URL is set). Query it with psql or a BI tool; the "
                                 "marts' Parquet files are in " f"{warehouse.marts_dir}.")


def _no_warehouse(path) -> int:
    print(f"error: no warehouse at {path}: run 'whitespace-etl demo' or 'whitespace-etl sync' first", file=sys.stderr)
    return 2


def _sql(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.warehouse import db

    warehouse = config.warehouse()
    _file_only(warehouse, 'sql')
    if not warehouse.path.exists():
        return _no_warehouse(warehouse.path)
    with db.session(warehouse, read_only=True) as conn:
        try:
            relation = conn.sql(args.query)
        except duckdb.Error as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if relation is not None:
            relation.show(max_width=160, max_rows=args.max_rows)
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    import os

    warehouse = config.warehouse()
    if not warehouse.url and not warehouse.path.exists() and not any(warehouse.marts_dir.glob("*.parquet")):
        return _no_warehouse(warehouse.path)
    app = Path(__file__).parent / "dashboard" / "app.py"
    from pipelines.warehouse import postgres

    over = f"the PostgreSQL warehouse {postgres.describe(warehouse.url)}" if warehouse.url else str(warehouse.path)
    print(f"Dashboard on http://{args.host}:{args.port}/ over {over} (read-only); Ctrl-C stops it")
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.host,
               "--server.port", str(args.port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--global.developmentMode", "false",
               "--client.toolbarMode", "viewer"]
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return 0  # not reached


def _export(args: argparse.Namespace) -> int:
    from pipelines.warehouse import db, marts

    warehouse = config.warehouse()
    _file_only(warehouse, 'export')
    if not warehouse.path.exists():
        return _no_warehouse(warehouse.path)
    with db.session(warehouse, read_only=True) as conn:
        written = marts.export_parquet(conn, Path(args.to))
    for table, file in written.items():
        print(f"  {table:<28} {file}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whitespace-etl", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log HTTP requests and more")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and the runs' own logs")
    sub = parser.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="serve the local Whitespace sandbox (Sync Gateway and API)")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    sb.add_argument("--seed", type=int, default=1, help="the same seed gives the same data")
    sb.add_argument("--scale", type=float, default=1.0, help="1.0: about 1,500 / 450 / 200 risks per organisation")
    sb.add_argument("--token-lifetime", type=float, default=3600.0, help="id_token lifetime in seconds")
    sb.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    sb.add_argument("--organisations", type=int, default=0,
                    help="grow the SUMO login to this many organisations (extra carriers) for scale tests")
    sb.add_argument("--logins", type=int, default=0,
                    help="add this many logins (tokens sandbox-renewable-login-01, …), for scale tests")
    sb.add_argument("--login-organisations", type=int, default=10, help="organisations of each added login (10)")
    sb.add_argument("--legacy-refresh-errors", action="store_true",
                    help="answer a rejected refresh token with 401 (Sync Gateway 2.7) instead of 500")
    sb.set_defaults(func=_sandbox)

    sy = sub.add_parser("sync", help="sync the configured login (WHITESPACE_* settings) into the warehouse")
    sy.set_defaults(scale=1.0)
    sy.add_argument("--all", action="store_true",
                    help="run every job: no change check, every organisation and the reference data are fetched "
                         "and loaded again")
    sy.add_argument("--full", action="store_true",
                    help="like --all, and fetch every root's contract and line sets again, not only what changed "
                         "(done anyway every WHITESPACE_RECONCILE_DAYS)")
    sy.add_argument("--accept-shrink", action="store_true",
                    help="apply risk lists that drop more of an organisation's risks than WHITESPACE_MAX_SHRINK "
                         "allows (by default such an answer is refused until it comes twice in a row)")
    sy.add_argument("--writers", type=int, default=1,
                    help="organisations loaded at once, each run in a process of its own (a PostgreSQL warehouse "
                         "only; default 1)")
    sy.set_defaults(func=_sync)

    de = sub.add_parser("demo", help="start the sandbox and sync it into the warehouse, no configuration needed")
    de.add_argument("--scale", type=float, default=1.0, help="sandbox scale")
    de.add_argument("--all", action="store_true",
                    help="run every job even where the change check finds nothing changed")
    de.set_defaults(func=_demo, accept_shrink=False, full=False)
    sq = sub.add_parser("sql", help="run a SQL query on the warehouse (read-only) and print the result")
    sq.add_argument("query")
    sq.add_argument("--max-rows", type=int, default=40)
    sq.set_defaults(func=_sql)

    da = sub.add_parser("dashboard", help="serve the book-of-business dashboard over the warehouse (read-only)")
    da.add_argument("--host", default="127.0.0.1")
    da.add_argument("--port", type=int, default=8501)
    da.set_defaults(func=_dashboard)

    ex = sub.add_parser("export", help="write the marts to Parquet files (one per mart)")
    ex.add_argument("--to", default="marts", help="directory to write into (default: marts/)")
    ex.set_defaults(func=_export)

    rb = sub.add_parser("rebuild", help="rebuild the warehouse tables from the raw landing, without the API")
    rb.set_defaults(func=_rebuild)

    pr = sub.add_parser("prune", help="delete landed answers older than WHITESPACE_RAW_KEEP_DAYS that a rebuild does "
                                      "not need, and partial files of killed downloads")
    pr.add_argument("--keep-days", type=float, default=None, help="instead of WHITESPACE_RAW_KEEP_DAYS (30)")
    pr.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    pr.set_defaults(func=_prune)

    at = sub.add_parser("alert-test", help="send a test message to the configured alert channels (WHITESPACE_ALERT_*)")
    at.set_defaults(func=_alert_test)

    ms = sub.add_parser("migrate-storage",
                        help="rewrite the warehouse file in WHITESPACE_DUCKDB_STORAGE_VERSION's format (v1.4.0: "
                             "what the DuckDB 1.x readers in BI tools open)")
    ms.set_defaults(func=_migrate_storage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    masked = _Masked(config.secret_values())  # every logger's records, third parties' (httpx) included
    for handler in logging.getLogger().handlers:
        handler.addFilter(masked)
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.debug:
        warnings.filterwarnings("ignore")
        logging.getLogger("dagster").setLevel(logging.CRITICAL)
    try:
        return args.func(args)
    except (WhitespaceError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a failure nobody foresaw still gets one line, not a traceback
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {describe(exc)} (whitespace-etl --debug ... shows the traceback)",
              file=sys.stderr)
        return 1


class _Masked(logging.Filter):
    """Masks the configured secrets (tokens, the webhook URL, the SMTP and PostgreSQL passwords) and anything
    shaped like a token in every record a handler writes, whichever logger made it."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for secret in self.secrets:
            text = text.replace(secret, "***")
        record.msg, record.args = redact(text), ()
        return True


def describe(exc: BaseException) -> str:
    """One line for a person: the error's own words, or what a system error means here."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full ({exc.filename or 'writing the warehouse or the raw landing'}): free space and run again."
    if isinstance(exc, OSError) and not isinstance(exc, WhitespaceError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
