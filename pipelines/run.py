"""Headless sync: discover organisations, register partitions, materialise everything through Dagster."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from pipelines import changes
from pipelines.client import WhitespaceError
from pipelines.resources import WarehouseResource, WhitespaceResource
from pipelines.warehouse import db

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SUMMARY_TABLES = ("risks", "risk_channels", "risk_visibility", "organisations", "teams", "users")


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, or ``.dagster/`` in the working directory with the project's instance settings."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and Path("dagster.yaml").exists():
        shutil.copy("dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Sets environment variables for the duration, then puts back what was there."""
    saved = {n: os.environ.get(n) for n in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


@contextlib.contextmanager
def _sandbox_env(scale: float) -> Iterator[None]:
    """Points the ``WHITESPACE_*`` variables at an in-process sandbox for the duration."""
    from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer

    with SandboxServer(scale=scale) as server, environment({
        "WHITESPACE_SYNC_URL": server.sync_url, "WHITESPACE_BUCKET": BUCKET,
        "WHITESPACE_API_URL": server.api_url, "WHITESPACE_REFRESH_TOKEN": SUMO_REFRESH_TOKEN,
        "WHITESPACE_USER_NAME": SUMO_USER_NAME, "WHITESPACE_USER_IDS": "",
    }):
        print(f"Sandbox of the Whitespace API on {server.url} (seed 1, scale {scale})")
        yield


@contextlib.contextmanager
def open_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance in ``home``. Two syncs starting together on a new home would both create
    its SQLite tables; a file lock makes the second wait for the first."""
    import fcntl

    with open(home / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = dg.DagsterInstance.get()
            instance.get_runs(limit=1)  # storage created and migrated while the lock is held
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with instance:
        yield instance


def _failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_failure_data:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None and "dagster" in err.cls_name.lower():
                err = err.cause
            return f"{err.cls_name}: {err.message.strip()}" if err else "step failed"
    return "run failed"


PID_TAG = "whitespace/pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_runs(instance: dg.DagsterInstance, log=print) -> int:
    """Runs of a sync process that was killed stay "started" and keep their warehouse-pool slot,
    which would block every later run: mark them failed and free their slots."""
    released = 0
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                 dg.DagsterRunStatus.STARTING])):
        pid = run.tags.get(PID_TAG)
        if pid and pid.isdigit() and not _alive(int(pid)):
            instance.report_run_failed(run, "the sync process that ran it is gone (killed)")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released += 1
    if released:
        log(f"Released {released} run{'s' if released != 1 else ''} left behind by a killed sync")
    return released


def sync(instance: dg.DagsterInstance, defs: dg.Definitions, log=print, everything: bool = False
         ) -> list[tuple[str, str, bool, str]]:
    """Runs the reference job, one partition run per organisation, then the marts; skips (and records
    as an observation) whatever the change check finds unchanged, unless ``everything``.
    Returns (mu, label, ok, note) per run considered."""
    from pipelines.assets.risks import organisations_partitions

    release_dead_runs(instance, log)
    tags = {PID_TAG: str(os.getpid())}
    warehouse = WarehouseResource()

    started = time.perf_counter()
    whitespace = WhitespaceResource()
    with whitespace.client() as client:
        organisations = client.discover_organisations()
        keys = [o.user_id for o in organisations]
        found = (None if everything else
                 changes.check_all(client, keys, warehouse.raw_path(), warehouse.db_path()))
    known = set(instance.get_dynamic_partitions(organisations_partitions.name))
    new = [k for k in keys if k not in known]
    if new:
        instance.add_dynamic_partitions(organisations_partitions.name, new)
    to_run = len(keys) + 1 if found is None else sum(c.changed for c in found.values())
    log(f"Organisations: {len(keys)} ({len(new)} new partition{'s' if len(new) != 1 else ''}); "
        f"{'every run forced' if found is None else f'{to_run} of {len(keys) + 1} lists changed'} "
        f"({time.perf_counter() - started:.1f} s)")

    outcomes = []
    steps = [(changes.CORPORATE, "reference data", "reference_data", "raw_corporate", {})]
    steps += [(o.user_id, o.company_id or o.user_id, "sync_organisation", "raw_risks", {"partition_key": o.user_id})
              for o in organisations]
    for n, (key, label, job, landing_asset, partition) in enumerate(steps):
        prefix = "[ref] reference data " if key == changes.CORPORATE else f"[{n}/{len(organisations)}] {label:<14} {key} "
        check = found.get(key) if found is not None else None
        started = time.perf_counter()
        if check is not None and not check.changed:
            changes.observe_unchanged(instance, landing_asset, key or None, check)
            log(f"{prefix}unchanged")
            outcomes.append((key, label, True, changes.UNCHANGED))
            continue
        config = dict(QUIET)
        if check is not None and check.landed is not None:
            config["ops"] = {landing_asset: {"config": {"reuse_sha256": check.landed.sha256}}}
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, raise_on_error=False, run_config=config, tags=tags, **partition)
        note = "" if result.success else _failure(result)
        why = f" ({check.reason})" if check is not None else ""
        log(f"{prefix}{'ok' if result.success else 'FAILED: ' + note}{why} ({time.perf_counter() - started:.1f} s)")
        outcomes.append((key, label, result.success, note))

    started = time.perf_counter()
    if found is not None and all(o[3] == changes.UNCHANGED for o in outcomes) and marts_current(instance, warehouse):
        log("[marts] unchanged")
        outcomes.append(("", "marts", True, changes.UNCHANGED))
        return outcomes
    result = defs.resolve_job_def("build_marts").execute_in_process(instance=instance, raise_on_error=False,
                                                                  run_config=QUIET, tags=tags)
    note = "" if result.success else _failure(result)
    log(f"[marts] marts {'ok' if result.success else 'FAILED: ' + note} ({time.perf_counter() - started:.1f} s)")
    outcomes.append(("", "marts", result.success, note))
    return outcomes


def marts_current(instance: dg.DagsterInstance, warehouse: WarehouseResource) -> bool:
    """The marts need no rebuild when they were built today (open-item ages count days), after the
    last load of every base table, and their Parquet files are all there."""
    from models import MART_TABLES

    def last(key: str) -> float | None:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        return event.timestamp if event else None

    built = min((last(t) or 0.0) for t in MART_TABLES)
    if not built or dt.datetime.fromtimestamp(built, dt.UTC).date() != dt.datetime.now(dt.UTC).date():
        return False
    if any((last(t) or 0.0) > built for t in ("risks", "contracts", "organisations")):
        return False
    return all((warehouse.marts_path() / f"{t}.parquet").exists() for t in MART_TABLES)


def summary(path: Path) -> str:
    with db.session(path, read_only=True) as conn:
        lines = ["", f"Warehouse {path}:"]
        for t in SUMMARY_TABLES:
            lines.append(f"  {t:<16} {conn.execute(f'SELECT count(*) FROM {db.ident(t)}').fetchone()[0]:>8,} rows")  # noqa: S608
        lines.append("  risks per organisation:")
        rows = conn.execute(
            """SELECT v.user_id, coalesce(s.company_id, ''), count(*) FROM risk_visibility v
               LEFT JOIN sync_state s USING (user_id) GROUP BY ALL ORDER BY 3 DESC"""
        ).fetchall()
        for user_id, company, count in rows:
            lines.append(f"    {company:<14} {user_id}  {count:>8,}")
    return "\n".join(lines)


def run_sync(demo: bool, scale: float = 1.0, everything: bool = False) -> int:
    from pipelines.definitions import defs

    home = dagster_home()
    warehouse = WarehouseResource().db_path()
    configured = WhitespaceResource().settings() is not None
    try:
        with contextlib.ExitStack() as stack:
            if demo or not configured:
                stack.enter_context(_sandbox_env(scale))
            instance = stack.enter_context(open_instance(home))
            print(f"Dagster home {home}; warehouse {warehouse}")
            outcomes = sync(instance, defs, everything=everything)
    except WhitespaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if not o[2]]
    if warehouse.exists():
        print(summary(warehouse))
    if failed:
        print(f"\nerror: {len(failed)} of {len(outcomes)} runs failed:", file=sys.stderr)
        for _mu, label, _ok, note in failed:
            print(f"  {label}: {note}", file=sys.stderr)
        return 1
    print(f"\nDone. Browse the runs: DAGSTER_HOME={home} dagster dev   (from this directory)")
    return 0


def rebuild(db_path: Path, raw_dir: Path, log=print) -> dict[str, int]:
    """Rebuilds every table from the newest landed answers, without calling the API."""
    from pipelines.warehouse import raw, reference, risks

    corporate = raw.latest(raw_dir, reference.ENDPOINT).get("")
    answers = raw.latest(raw_dir, risks.ENDPOINT)
    if corporate is None and not answers:
        raise FileNotFoundError(f"No landed answers in {raw_dir}: run a sync first.")
    with db.session(db_path) as conn:
        if corporate is not None:
            reference.load(conn, corporate, corporate.relative_to(raw_dir))
        for user_id, landed in sorted(answers.items()):
            result = risks.load(conn, landed, landed.relative_to(raw_dir))
            log(f"  {landed.company_id or user_id:<14} {result.distinct_risks:>8,} risks from {landed.path.name}")
        return {t: conn.execute(f"SELECT count(*) FROM {db.ident(t)}").fetchone()[0] for t in SUMMARY_TABLES}  # noqa: S608


def run_rebuild() -> int:
    warehouse = WarehouseResource()
    try:
        rebuild(warehouse.db_path(), warehouse.raw_path())
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(warehouse.db_path()))
    return 0
