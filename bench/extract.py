"""Extraction and incremental benchmarks against a sandbox running in its own process."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx

from pipelines.client import Settings, WhitespaceClient, endpoints
from pipelines.extract import details
from pipelines.landing import raw
from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, sandbox_process

PLATFORM = ("GET /api/", "POST /api/", "POST /mireport/")
"""Every request to the platform's API and MI report (not Sync Gateway's token refresh)."""


def api_requests(url: str, kinds: tuple[str, ...] = PLATFORM) -> int:
    stats = httpx.get(f"{url}/_sandbox/stats", trust_env=False).json()
    return sum(v for k, v in stats.items() if k.startswith(kinds))


MONEY = {"mi": ("POST /mireport/",), "defined_data": ("GET /api/v23.09/data/",)}
"""The requests the money adds: the MI report's prepare and fetch, and each changed root's Defined Data."""


def extraction(scale: float, latency_ms: float, sample_seconds: float = 0.0) -> dict:
    """Every organisation's list and every root's contract and lines, as the pipeline fetches them.
    ``sample_seconds``: also the process's resident memory and the requests made so far, that often
    (whether memory stays flat as the book grows)."""
    with sandbox_process(scale, latency_ms) as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_values(f"{url}/sync", BUCKET, f"{url}/api", SUMO_REFRESH_TOKEN,
                                        user_name=SUMO_USER_NAME)
        with WhitespaceClient(settings) as client:
            client.version()  # the token, outside the measured time
            before = api_requests(url)
            samples: list[dict] = []
            done = threading.Event()
            started = time.perf_counter()

            def sample() -> None:
                while not done.wait(sample_seconds):
                    samples.append({"seconds": round(time.perf_counter() - started, 1),
                                    "requests": api_requests(url) - before, "rss_mb": round(_rss_mb())})

            sampler = threading.Thread(target=sample, daemon=True)
            if sample_seconds:
                sampler.start()
            orgs = client.discover_organisations()

            def land(user_id: str) -> raw.Landed:
                download = raw.download_risk_list(client.for_user(user_id), Path(tmp), user_id)
                return raw.record(download, Path(tmp), user_id, endpoints.RISKS)

            def fetch(user_id: str) -> details.Fetched:
                return details.fetch(client.for_user(user_id), Path(tmp), lists[user_id])

            # As a run of the organisations does it (raw_risks, then raw_risk_details): the organisations
            # at once, within the login's max_concurrency requests in flight.
            lists = dict(client.each(land, [o.user_id for o in orgs]))
            risks = max((landed.items for landed in lists.values()), default=0)
            for _ in client.each(fetch, list(lists)):
                pass
            seconds = time.perf_counter() - started
            done.set()
            if sample_seconds:
                sampler.join()
            requests = api_requests(url) - before  # the stats calls are not counted by the sandbox
            concurrency = settings.max_concurrency
    ideal = requests * latency_ms / 1000 / concurrency
    out = {"organisations": len(orgs), "requests": requests, "seconds": seconds, "ideal_seconds": ideal,
           "latency_ms": latency_ms, "concurrency": concurrency, "scale": scale, "largest_list": risks}
    if sample_seconds:
        import resource

        out["memory_samples"] = samples
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _rss_mb() -> float:
    """This process's resident memory now (not its peak), from ``/proc``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def incremental(scale: float = 1.0, organisations: int = 0, latency_ms: float = 0.0, changed: float = 0.01) -> dict:
    """A full sync through Dagster, then one with nothing changed, then one with ``changed`` (1%) of the
    documents revised. ``organisations`` grows the SUMO login (the sandbox's extra carriers); 0 keeps the
    demo's three. A changed resync that finds nothing changed (a fraction too small for the book: the
    sandbox revises each document with that probability) is an error, not a figure."""
    import dagster as dg

    from pipelines.app.eventlog import keep_connected
    from pipelines.app.sync import sync
    from pipelines.config import WarehouseConfig
    from pipelines.defs.build import build
    from pipelines.defs.resources import WhitespaceResource, for_warehouse

    with sandbox_process(scale, latency_ms, organisations) as url, tempfile.TemporaryDirectory() as tmp:
        whitespace = WhitespaceResource(sync_url=f"{url}/sync", bucket=BUCKET, api_url=f"{url}/api",
                                        refresh_token=SUMO_REFRESH_TOKEN, user_name=SUMO_USER_NAME)
        warehouse = for_warehouse(WarehouseConfig(path=Path(tmp) / "warehouse.duckdb"))
        defs = build({"whitespace": whitespace, "warehouse": warehouse})
        shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", Path(tmp) / "dagster.yaml")  # as a sync does
        with keep_connected(dg.DagsterInstance.from_config(tmp)) as instance:  # as a sync does
            out: dict = {"scale": scale, "latency_ms": latency_ms, "changed_fraction": changed}
            for label, change in (("full", None), ("unchanged", None), ("changed", changed)):
                if change:
                    httpx.post(f"{url}/_sandbox/advance", json={"changed_fraction": change, "new_roots": 0})
                before = api_requests(url)
                money = {k: api_requests(url, v) for k, v in MONEY.items()}
                known = {r.run_id for r in instance.get_runs()}
                started = time.perf_counter()
                outcomes = sync(instance, defs, log=lambda *_: None)
                out["organisations"] = len(outcomes) - 3  # less the reference data, MI report and marts
                out[f"{label}_seconds"] = time.perf_counter() - started
                out[f"{label}_requests"] = api_requests(url) - before
                for kind, prefixes in MONEY.items():
                    out[f"{label}_{kind}_requests"] = api_requests(url, prefixes) - money[kind]
                assert all(o.ok for o in outcomes), outcomes
                out[f"{label}_split"] = split(instance, known, out[f"{label}_seconds"])
                if label == "changed" and out["changed_split"]["load"] == 0:
                    raise AssertionError(f"revising {changed:.0%} of the documents at scale {scale} changed "
                                         "nothing: no load ran, so this is not a changed resync's figure")
            return out


def split(instance, known: set[str], wall: float) -> dict[str, float]:
    """Wall time of a sync split into network (the extract steps), load (the warehouse steps) and
    the rest: Dagster's own work (runs, events, checks), organisation discovery and the change check
    (which fetches every list before any run starts)."""
    network = load = 0.0
    for run in instance.get_runs():
        if run.run_id in known:
            continue
        for step in instance.get_run_step_stats(run.run_id):
            seconds = (step.end_time or 0) - (step.start_time or 0)
            if step.step_key.startswith("raw_"):
                network += seconds
            else:
                load += seconds
    return {"network": network, "load": load, "dagster_and_discovery": max(0.0, wall - network - load)}
