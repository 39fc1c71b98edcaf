"""The headless sync: discover organisations, check what changed, run the plan through Dagster."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from pipelines import config
from pipelines.app.eventlog import keep_connected
from pipelines.client import endpoints
from pipelines.defs.freshness import confirm_current
from pipelines.defs.launcher import HOST_TAG, PID_TAG, process_alive, run_pid
from pipelines.defs.partitions import WAREHOUSE_POOL, organisations_partitions, partition_key, split_key
from pipelines.defs.plan import (
    CORPORATE,
    MARTS_JOB,
    MI_AND_MARTS_JOB,
    MI_JOB,
    ORGANISATION_JOB,
    UNCHANGED,
    Step,
    SyncPlan,
    range_run,
    retire_departed,
)
from pipelines.defs.resources import WarehouseResource, WhitespaceResource
from pipelines.extract import changes, mireport
from pipelines.landing import raw
from pipelines.warehouse import db, state

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Runs report through this module's one line each; their full logs are in the Dagster instance."""
DEBUG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
SUMMARY_TABLES = ("risks", "risk_channels", "risk_visibility", "organisations", "teams", "users")
FATAL = frozenset({"WarehouseLocked", "RefreshTokenRejected", "ConfigError", "InvalidUserId"})
"""Errors that every later run would meet again: the sync stops at the first one (a full disk too)."""
DISK_FULL = "No space left on device"
LOGIN_FATAL = "RefreshTokenRejected"
"""With several logins, the error that stops only the rest of its own login."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    key: str
    label: str
    ok: bool
    note: str
    """Why it failed (``ErrorClass: message``), ``UNCHANGED``, or empty."""

    @property
    def fatal(self) -> bool:
        return not self.ok and (self.note.split(":", 1)[0] in FATAL or DISK_FULL in self.note)

    @property
    def login_only(self) -> bool:
        """Fatal to this partition's login only (its token), not to the other logins'."""
        return self.note.startswith(f"{LOGIN_FATAL}:")


INSTANCE_SETTINGS = Path(__file__).with_name("dagster.yaml")
"""The project's Dagster instance settings (the warehouse pool, telemetry off), as the repository's
``dagster.yaml`` has them for ``dagster dev``."""


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, or ``.dagster/`` in the working directory; given the project's instance
    settings when it has none of its own."""
    home = (config.dagster_home() or Path(".dagster")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(INSTANCE_SETTINGS, home / "dagster.yaml")
    return home


def open_instance(home: Path) -> dg.DagsterInstance:
    """The Dagster instance in ``home``. Two syncs starting together on a new home would both create
    its SQLite tables; a file lock makes the second wait for the first."""
    import fcntl

    with open(home / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = keep_connected(dg.DagsterInstance.from_config(str(home)))
            # every storage (runs, event log, schedules) created and migrated while the lock is held:
            # SQLite storages made by two processes at once would both stamp their schema version
            instance.get_runs(limit=1)
            instance.all_instigator_state()
            ensure_warehouse_pool(instance)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return instance


def ensure_warehouse_pool(instance: dg.DagsterInstance, log=print) -> None:
    """An instance configured elsewhere (a team's ``dagster.yaml``, PostgreSQL's included) may not limit
    the warehouse pool: give it its limit of one writer in the instance's storage, leaving the rest of
    that configuration as it is. A limit already set (in ``dagster.yaml`` or the UI) is kept."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    info = storage.get_concurrency_info(WAREHOUSE_POOL)
    if info.limit is None and not info.slot_count:
        storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
        log(f"Dagster pool {WAREHOUSE_POOL!r} limited to 1 (one warehouse writer at a time) in this instance")


def allow_writers(instance: dg.DagsterInstance, writers: int, log=print) -> None:
    """A PostgreSQL warehouse takes several writers: the warehouse pool lets ``writers`` of its steps run
    at once (a higher limit already set is kept)."""
    storage = instance.event_log_storage
    if writers <= 1 or not storage.supports_global_concurrency_limits:
        return
    info = storage.get_concurrency_info(WAREHOUSE_POOL)
    if (info.slot_count or 0) < writers:
        storage.set_concurrency_slots(WAREHOUSE_POOL, writers)
        log(f"Dagster pool {WAREHOUSE_POOL!r} limited to {writers} (the PostgreSQL warehouse takes several writers)")


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """``ErrorClass: message`` of the first failed step, past Dagster's own wrappers."""
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_failure_data:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None and "dagster" in err.cls_name.lower():
                err = err.cause
            return f"{err.cls_name}: {err.message.strip()}" if err else "step failed"
    return "run failed"


def release_dead_runs(instance: dg.DagsterInstance, log=print) -> int:
    """Runs whose process is gone (a killed sync, a killed ``dagster dev``) stay "started" and keep
    their warehouse-pool slot, which would block every later run: mark them failed and free their
    slots now (the daemon's run monitoring does the same where it runs)."""
    released = 0
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                 dg.DagsterRunStatus.STARTING])):
        pid = run_pid(instance, run)
        if pid is not None and not process_alive(pid):
            instance.report_run_failed(run, f"the process that ran it ({pid}) is gone: it was killed or crashed")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released += 1
    if released:
        log(f"Released {released} run{'s' if released != 1 else ''} left behind by a killed process")
    return released


@dataclasses.dataclass
class _Found:
    """What discovery and the change check found, over every login."""

    labels: dict[str, str] = dataclasses.field(default_factory=lambda: {CORPORATE: "reference data"})
    failed_logins: dict[str, str] = dataclasses.field(default_factory=dict)
    checks: dict[str, changes.Check] = dataclasses.field(default_factory=dict)
    mi_rows: int | None = 0
    mi_waiting: bool = False
    marts_built: tuple[float, int] | None = None
    marts_unknown: bool = False
    """A login's read of the warehouse did not find the marts built from every load (or could not read it)."""


def plan_sync(instance: dg.DagsterInstance, whitespace: WhitespaceResource, warehouse: WarehouseResource,
              everything: bool, log=print) -> SyncPlan:
    """Discovers each login's organisations, adds their partitions and checks what changed (unless
    ``everything``). With several logins, one that fails as every later request of it would (a rejected
    token) is reported, and its known partitions are planned as changed: their runs fail with its message
    (the first one stops the rest of that login), while the other logins sync."""
    started = time.perf_counter()
    known = set(instance.get_dynamic_partitions(organisations_partitions.name))
    found = _Found()
    _, found.failed_logins = whitespace.each_login(
        lambda client, login: _plan_login(client, login, instance, warehouse, found, everything, log), log)
    for login, note in found.failed_logins.items():
        for key in sorted(k for k in known if split_key(k)[0] == login):
            found.labels[key] = f"{login} (failed)"
            found.checks[key] = changes.Check(split_key(key)[1], f"login failed ({note.split(':', 1)[0]})")
    new = add_partitions(instance, [k for k in found.labels if k != CORPORATE])
    if not everything and CORPORATE not in found.checks:
        found.checks[CORPORATE] = changes.Check(CORPORATE, "not checked: no login could read it")
    plan = dataclasses.replace(SyncPlan.make(found.labels, None if everything else found.checks),
                               mi_rows=found.mi_rows, mi_waiting=found.mi_waiting,
                               failed_logins=found.failed_logins,
                               marts_built=None if found.marts_unknown else found.marts_built)
    log(f"Organisations: {len(found.labels) - 1} ({len(new)} new partition{'s' if len(new) != 1 else ''}); "
        f"{plan.summary()} ({time.perf_counter() - started:.1f} s)")
    return plan


def add_partitions(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Adds the partitions among ``keys`` the instance lacks; returns them. Dagster's own add reads, then
    inserts, so two syncs starting together can both insert the same key: the second one's unique-key
    error means the other sync added it, which is checked, not assumed."""
    import sqlalchemy as sa

    known = set(instance.get_dynamic_partitions(organisations_partitions.name))
    new = [k for k in keys if k not in known]
    if new:
        try:
            instance.add_dynamic_partitions(organisations_partitions.name, new)
        except sa.exc.IntegrityError:
            missing = set(new) - set(instance.get_dynamic_partitions(organisations_partitions.name))
            if missing:
                raise
    return new


def _plan_login(client, login: str, instance: dg.DagsterInstance, warehouse: WarehouseResource, found: _Found,
                everything: bool, log) -> None:
    organisations = client.discover_organisations()
    user_ids = [o.user_id for o in organisations]
    keys = [partition_key(login, mu) for mu in user_ids]
    retire_departed(instance, warehouse, keys, bool(client.settings.user_ids), log, login)
    loaded = state.read(warehouse.settings(), user_ids)
    if not everything:
        checks = changes.check_all(client, user_ids, warehouse.raw_path(), loaded,
                                   corporate_list=CORPORATE not in found.checks,  # one platform-wide list
                                   reconcile_every=warehouse.settings().reconcile_every)
        found.checks.update({k if k == CORPORATE else partition_key(login, k): c for k, c in checks.items()})
    rows = _land_mi_report(client, user_ids, warehouse, log)
    found.labels.update({partition_key(login, o.user_id): o.company_id or o.user_id for o in organisations})
    found.mi_rows = None if rows is None or found.mi_rows is None else found.mi_rows + rows
    found.mi_waiting = found.mi_waiting or loaded is None or loaded.mi_waiting
    if loaded is None or loaded.marts_built is None:
        found.marts_unknown = True
    else:
        found.marts_built = loaded.marts_built


def _land_mi_report(client, keys: list[str], warehouse: WarehouseResource, log) -> int | None:
    """The MI report's changed rows, landed (then the platform's cursor moved) as part of the check: the
    MI job then loads them. None when it could not be read now (the job then tries itself)."""
    from pipelines.client import WhitespaceError

    try:
        return sum(mireport.extract(client, keys, warehouse.raw_path()).rows.values())
    except (WhitespaceError, ValueError) as exc:
        log(f"MI report not checked: {type(exc).__name__}: {exc}")
        return None


def _prefix(step: Step, n: int, total: int) -> str:
    if step.key == CORPORATE:
        return "[ref] reference data "
    return f"[{n}/{total}] {step.label:<14} {step.key} "


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, partition: str | None, run_config: dict,
             tags: dict) -> tuple[bool, str]:
    """One run of ``job`` in this process: whether it succeeded, and why not."""
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config, tags=tags, partition_key=partition)
    return result.success, "" if result.success else _failure(result)


def run_in_worker(home: str, job: str, partition: str, run_config: dict, tags: dict) -> tuple[bool, str]:
    """One organisation's run in a worker process of ``sync --writers``: the definitions as the environment
    configures them, the sync's Dagster instance."""
    from pipelines.defs import resources
    from pipelines.defs.build import build

    with keep_connected(dg.DagsterInstance.from_config(home)) as instance:
        return _execute(build(resources.from_environment()), instance, job, partition, run_config,
                        {**tags, PID_TAG: str(os.getpid())})


class _InProcess:
    """The executor of one writer: each run in this process, done by the time it is submitted."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, function, *args):
        import concurrent.futures as cf

        future: cf.Future = cf.Future()
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future, as a pool would
            future.set_exception(exc)
        return future


def _writers_pool(writers: int):
    """``writers`` worker processes, forked from a server process that imported the pipeline once (not from
    this process, whose threads and open storage a fork would copy), so each starts in a fraction of a second."""
    import concurrent.futures as cf
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pipelines.app.sync", "pipelines.defs.build"])
    return cf.ProcessPoolExecutor(max_workers=writers, mp_context=context)


def run_plan(instance: dg.DagsterInstance, defs: dg.Definitions, plan: SyncPlan, log=print,
             debug: bool = False, accept_shrink: bool = False, full: bool = False, writers: int = 1) -> list[Outcome]:
    """Runs each step that needs a run, records an observation for each that does not, and stops at
    the first error that every later run would meet again. The reference data runs first; then
    ``writers`` organisations' runs at once (more than one: a PostgreSQL warehouse, each run in a worker
    process of its own; a stop lets the runs under way finish and starts none)."""
    import concurrent.futures as cf

    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    total = len([s for s in plan.steps if s.key != CORPORATE])
    several = len({split_key(s.key)[0] for s in plan.steps if s.key != CORPORATE}) > 1
    stopped: dict[str, str] = {}
    """Login -> why its remaining partitions are not run (its token was rejected)."""
    outcomes = [  # a login that failed: said once; its known partitions run (the first fails) below
        Outcome(f"{login}:", f"login {login}", False, note) for login, note in plan.failed_logins.items()]
    queue: list[tuple[str, Step]] = []
    for n, step in enumerate(plan.steps):
        if step.key != CORPORATE:
            queue.append((_prefix(step, n, total), step))
            continue
        prefix = _prefix(step, n, total)
        if not step.needs_run:
            outcomes.append(_unchanged(instance, step, prefix, log))
            continue
        started = time.perf_counter()
        ok, note = _execute(defs, instance, step.job, step.partition, _run_config(step, debug, accept_shrink, full),
                            tags)
        outcomes.append(_outcome(step, prefix, ok, note, started, log))
        if outcomes[-1].fatal:
            log(f"Stopped: {outcomes[-1].note.split(': ', 1)[-1]}")
            return outcomes
    running: dict[cf.Future, tuple[str, Step, float]] = {}
    order = ({k: i for i, k in enumerate(instance.get_dynamic_partitions(organisations_partitions.name))}
             if writers <= 1 else {})  # where each partition is, for runs over several (one writer only)
    alone: set[str] = set()
    """Organisations whose run with others failed: each runs on its own, with its own outcome."""
    with _InProcess() if writers <= 1 else _writers_pool(writers) as pool:
        while queue or running:
            while queue and len(running) < writers:
                prefix, step = queue.pop(0)
                login = split_key(step.key)[0]
                if login in stopped:
                    log(f"{prefix}not run: login {login!r} stopped")
                    outcomes.append(Outcome(step.key, step.label, False, stopped[login]))
                elif not step.needs_run:
                    outcomes.append(_unchanged(instance, step, prefix, log))
                elif writers <= 1 and len(batch := _take_batch((prefix, step), queue, order, alone, stopped)) > 1:
                    together = _run_together(defs, instance, batch, tags, debug, accept_shrink, full, log)
                    if together is None:
                        alone.update(s.key for _, s in batch)
                        queue[:0] = batch
                    else:
                        outcomes += together
                else:
                    run_config, started = _run_config(step, debug, accept_shrink, full), time.perf_counter()
                    future = (pool.submit(_execute, defs, instance, step.job, step.partition, run_config, tags)
                              if writers <= 1 else
                              pool.submit(run_in_worker, str(instance.root_directory), step.job, step.partition,
                                          run_config, tags))
                    running[future] = (prefix, step, started)
            if not running:
                continue
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                prefix, step, started = running.pop(future)
                outcome = _outcome(step, prefix, *future.result(), started, log)
                outcomes.append(outcome)
                login = split_key(step.key)[0]
                if outcome.fatal and several and outcome.login_only:
                    stopped[login] = outcome.note
                    log(f"Login {login!r} stopped: {outcome.note.split(': ', 1)[-1]}")
                elif outcome.fatal:
                    log(f"Stopped: {outcome.note.split(': ', 1)[-1]}")
                    queue.clear()
    if any(o.fatal and not (several and o.login_only) for o in outcomes):
        return outcomes
    if plan.mi_needed:
        outcomes += _mi_report_and_marts(instance, defs, tags, log, debug)
    else:
        outcomes.append(_mi_report(instance, defs, plan, tags, log, debug))
        outcomes.append(_marts(instance, defs, plan, tags, log, debug))
    return outcomes


BRIDGE_RISKS = 20_000
"""Unchanged organisations between two changed ones join the changed ones' run (their loaded answer is
loaded again: the same rows) while their lists hold fewer risks than this together: at the loader's pace
(docs/performance.md: 26,000 to 55,000 risks a second) that costs well under the second or two of a run of
its own in Dagster. A larger book between them keeps the runs apart."""


def _take_batch(first: tuple[str, Step], queue: list[tuple[str, Step]], order: dict[str, int], alone: set[str],
                stopped: dict[str, str]) -> list[tuple[str, Step]]:
    """``first`` and the organisations after it in ``queue`` that need a run too and come right after it in
    the partitions' order (one Dagster run takes a range of partitions), taken from ``queue``; unchanged ones
    between them join when small (``BRIDGE_RISKS``)."""
    batch = [first]
    if first[1].key in alone or first[1].key not in order:
        return batch
    gap: list[tuple[str, Step]] = []
    for item in queue:
        step, last = item[1], (gap or batch)[-1][1]
        if step.key in alone or split_key(step.key)[0] in stopped or order.get(step.key) != order[last.key] + 1:
            break
        if step.needs_run:
            batch += [*gap, item]
            gap = []
        elif step.check is None or step.check.landed is None or \
                sum(s.check.landed.items for _, s in gap) + step.check.landed.items >= BRIDGE_RISKS:
            break
        else:
            gap.append(item)
    del queue[:len(batch) - 1]
    return batch


def _run_together(defs: dg.Definitions, instance: dg.DagsterInstance, batch: list[tuple[str, Step]], tags: dict,
                  debug: bool, accept_shrink: bool, full: bool, log) -> list[Outcome] | None:
    """One run over ``batch``'s organisations (consecutive partitions): its fixed cost once, each
    organisation still loaded in a transaction of its own. None when it failed: the caller then runs
    each on its own, so each gets its own outcome and message (those loaded already load again, the same)."""
    steps = [s for _, s in batch]
    run_config, range_tags = range_run(steps, accept_shrink, full)
    started = time.perf_counter()
    ok, note = _execute(defs, instance, ORGANISATION_JOB, None, {**(DEBUG if debug else QUIET), **run_config},
                        {**tags, **range_tags})
    seconds = time.perf_counter() - started
    if not ok:
        log(f"[{len(steps)} organisations in one run] failed after {seconds:.1f} s ({note}): each runs on its own now")
        return None
    for prefix, step in batch:
        why = "forced, " if step.check is None else f"{step.reason}, " if step.needs_run else "unchanged, loaded again "
        log(f"{prefix}ok ({why}one run of {len(steps)}: {seconds:.1f} s)")
    return [Outcome(s.key, s.label, True, "") for s in steps]


def _run_config(step: Step, debug: bool, accept_shrink: bool, full: bool) -> dict:
    return {**(DEBUG if debug else QUIET), **step.run_config(accept_shrink, full)}


def _unchanged(instance: dg.DagsterInstance, step: Step, prefix: str, log) -> Outcome:
    """A step that needs no run: recorded as observed, said in one line."""
    step.observe(instance)
    log(f"{prefix}unchanged")
    return Outcome(step.key, step.label, True, UNCHANGED)


def _outcome(step: Step, prefix: str, ok: bool, note: str, started: float, log) -> Outcome:
    """A run's outcome, said in one line."""
    why = f" ({step.reason})" if step.check is not None else ""
    log(f"{prefix}{'ok' if ok else 'FAILED'}{why} ({time.perf_counter() - started:.1f} s)")
    return Outcome(step.key, step.label, ok, note)


def _mi_report(instance, defs: dg.Definitions, plan: SyncPlan, tags: dict, log, debug: bool) -> Outcome:
    if not plan.mi_needed:
        confirm_current(instance, "mi_report")
    return _whole_job(instance, defs, MI_JOB, "[mi]   ", "MI report", plan.mi_needed, tags, log, debug)


def _mi_report_and_marts(instance, defs: dg.Definitions, tags: dict, log, debug: bool) -> list[Outcome]:
    """The MI report changed, so the marts follow it: both in one run (a run's fixed cost saved). If the
    marts were not built in it (the MI report failed before them, or they failed), they run on their own,
    with their own outcome, as they would after a separate MI report run."""
    started = time.perf_counter()
    result = defs.resolve_job_def(MI_AND_MARTS_JOB).execute_in_process(
        instance=instance, raise_on_error=False, run_config=DEBUG if debug else QUIET, tags=tags)
    seconds = time.perf_counter() - started
    succeeded = {e.step_key for e in result.all_events if e.is_step_success}
    mi_ok = {"raw_mi_report", "mi_report_tables"} <= succeeded
    mi = Outcome("", "MI report", mi_ok, "" if mi_ok else _failure(result))
    log(f"[mi]    MI report {'ok' if mi.ok else 'FAILED'} (in one run with the marts: {seconds:.1f} s)")
    if result.success:
        log("[marts] marts ok (in that run)")
        return [mi, Outcome("", "marts", True, "")]
    return [mi, _whole_job(instance, defs, MARTS_JOB, "[marts]", "marts", True, tags, log, debug)]


def _marts(instance, defs: dg.Definitions, plan: SyncPlan, tags: dict, log, debug: bool) -> Outcome:
    warehouse: WarehouseResource = initialised(instance, defs, "warehouse")
    needed = plan.forced or bool(plan.runs) or not marts_current(warehouse, plan.marts_built)
    return _whole_job(instance, defs, MARTS_JOB, "[marts]", "marts", needed, tags, log, debug)


def _whole_job(instance, defs: dg.Definitions, job: str, tag: str, label: str, needed: bool, tags: dict, log,
               debug: bool) -> Outcome:
    """Runs an unpartitioned job (the MI report, the marts) when ``needed``; one line either way."""
    prefix = f"{tag} {label}"
    if not needed:
        log(f"{prefix} unchanged")
        return Outcome("", label, True, UNCHANGED)
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=DEBUG if debug else QUIET, tags=tags)
    outcome = Outcome("", label, result.success, "" if result.success else _failure(result))
    log(f"{prefix} {'ok' if outcome.ok else 'FAILED'} ({time.perf_counter() - started:.1f} s)")
    return outcome


def marts_current(warehouse: WarehouseResource, built: tuple[float, int] | None, now: float | None = None) -> bool:
    """The marts need no rebuild when the warehouse records that they were built from every load it
    holds (``built``: when, and with which open-item age; whichever Dagster instance ran the loads),
    today (open-item ages count days), with the open-item age configured now, and their Parquet files
    are all there and all of that build (not restored from another). ``now``: the time to judge "today" by
    (default: the clock, read once)."""
    from pipelines.warehouse import marts

    if built is None:
        return False
    when, days = built
    built_at = dt.datetime.fromtimestamp(when, dt.UTC).replace(tzinfo=None)
    if built_at.date() != dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC).date():
        return False
    if days != warehouse.settings().open_item_days:
        return False
    return marts.exports_built(warehouse.marts_path()) == {marts.build_stamp(built_at)}


def initialised(instance: dg.DagsterInstance, defs: dg.Definitions, key: str):
    """``defs``' resource ``key`` with its configuration resolved (environment variables read), as a run
    would have it. Dagster's ``process_config_and_initialize`` does the same on an ephemeral instance it
    makes and closes for each call (about 80 ms, three times a sync); this uses ``instance``."""
    with dg.build_resources({key: defs.resources[key]}, instance=instance) as built:
        return getattr(built, key)


def sync(instance: dg.DagsterInstance, defs: dg.Definitions, log=print, everything: bool = False,
         debug: bool = False, accept_shrink: bool = False, full: bool = False, writers: int = 1) -> list[Outcome]:
    """The whole sync against ``defs``' resources: plan, then run. Returns one outcome per step. ``full``:
    every job runs and every root's contract and lines are fetched again (implies ``everything``).
    ``writers``: organisations' runs at once (more than one needs a PostgreSQL warehouse)."""
    release_dead_runs(instance, log)
    whitespace = initialised(instance, defs, "whitespace")
    warehouse = initialised(instance, defs, "warehouse")
    plan = plan_sync(instance, whitespace, warehouse, everything or full, log)
    return run_plan(instance, defs, plan, log, debug, accept_shrink, full, writers)


def summary(warehouse: config.WarehouseConfig) -> str:
    """Row counts of the main tables; a line saying why when the warehouse cannot be read now."""
    if warehouse.url:
        return _postgres_summary(warehouse)
    try:
        conn = db.connect(warehouse, read_only=True, wait=0)
    except db.WarehouseLocked:
        return f"\nWarehouse {warehouse.path}: in use by another process, no summary."
    with conn:
        lines = ["", f"Warehouse {warehouse.path} (DuckDB storage {db.storage_version(conn)}):"]
        newer = db.newer_than_configured(conn, warehouse)
        if newer:
            lines.insert(1, f"warning: the warehouse file is in DuckDB storage {newer}, which readers of "
                            f"{warehouse.storage_version} (the DuckDB 1.x inside BI tools) cannot open: run "
                            "'whitespace-etl migrate-storage', or set WHITESPACE_DUCKDB_STORAGE_VERSION=latest "
                            "if every reader is DuckDB 2.")
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


def _postgres_summary(warehouse: config.WarehouseConfig) -> str:
    from pipelines.warehouse import postgres

    try:
        counts = postgres.counts(warehouse, SUMMARY_TABLES)
        rows = postgres.query(warehouse, """SELECT v.user_id, coalesce(s.company_id, ''), count(*) FROM risk_visibility v
                                            LEFT JOIN sync_state s USING (user_id) GROUP BY 1, 2 ORDER BY 3 DESC""")
    except postgres.PostgresUnavailable as exc:
        return f"\nWarehouse in PostgreSQL: no summary ({exc})"
    lines = ["", f"Warehouse in PostgreSQL ({postgres.describe(warehouse.url)}):"]
    lines += [f"  {t:<16} {n:>8,} rows" for t, n in counts.items()]
    lines.append("  risks per organisation:")
    lines += [f"    {company:<14} {user_id}  {count:>8,}" for user_id, company, count in rows]
    return "\n".join(lines)


def rebuild(warehouse: config.WarehouseConfig, log: Callable[[str], object] = print) -> dict[str, int]:
    """Brings the warehouse up to the landed answers without calling the API: the reference tables from
    the newest corporate list, each organisation's risk tables from its newest risk list, the detail
    tables from every landed detail file not loaded yet, then the marts. Returns each table's rows."""
    from models import MART_TABLES
    from pipelines.warehouse import details, marts, reference, risks
    from pipelines.warehouse import mireport as mi_loader

    raw_dir = warehouse.raw_dir
    corporate = raw.latest(raw_dir, endpoints.CORPORATE).get(CORPORATE)
    answers = raw.latest(raw_dir, endpoints.RISKS)
    if corporate is None and not answers:
        raise raw.NothingLanded(f"No landed answers in {raw_dir}: run a sync first.")
    with db.session(warehouse) as conn:
        if corporate is not None:
            reference.load_corporate(conn, corporate, corporate.relative_to(raw_dir))
            log(f"  reference tables   from {corporate.path.name}")
        for user_id, landed in sorted(answers.items()):
            result = risks.load_list(conn, landed, landed.relative_to(raw_dir), max_shrink=warehouse.max_shrink)
            loaded = details.load_pending(conn, raw_dir, user_id)
            log(f"  {landed.company_id or user_id:<18} {result.distinct_risks:>8,} risks from {landed.path.name}, "
                f"{loaded.files} detail file{'s' if loaded.files != 1 else ''} not loaded before")
        mi = mi_loader.load_pending(conn, raw_dir)
        log(f"  MI report          {mi.rows:,} rows from {mi.files} file{'s' if mi.files != 1 else ''} not loaded before")
        built = marts.build(conn, warehouse.open_item_days)
        marts.export_parquet(conn, warehouse.marts_dir, built)
        marts.record(conn, built)
        log(f"  marts              rebuilt and exported to {warehouse.marts_dir}")
        tables = (*SUMMARY_TABLES, "users__teams", "risk_history", *details.DETAIL_TABLES, *mi_loader.MI_TABLES,
                  *MART_TABLES)
        return {t: conn.execute(f"SELECT count(*) FROM {db.ident(t)}").fetchone()[0] for t in tables}  # noqa: S608
