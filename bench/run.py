"""The benchmark harness: ``python -m bench.run`` (``--quick``: every part at a small size, in under
two minutes; the test suite runs it).

Measures, on this machine and the same data:
1. normalise and load of a landed ``/api/risks`` answer: this project, dlt (default configuration,
   and parquet loader files, its fastest documented one), and DuckDB alone (``read_json_objects``
   plus ``unnest``): rows per second and peak memory, each in a fresh process;
2. extraction against the sandbox (in its own process) with 50 ms added per request: wall time
   against the ideal requests x latency / concurrency;
3. end to end through Dagster, at the demo's three organisations (with no added latency, and with
   the extraction's latency) and at twenty (the sandbox's extra carriers), split into Dagster,
   network and load time;
4. incremental resyncs at both (each with no added latency and with 50 ms): nothing changed and 1%
   changed, against a full sync;
5. the delta load: the next day's answer with one document in a hundred revised, into a warehouse that
   holds the first (``ours_delta``), against the full load in the same process;
6. (``--parts large``, about an hour, not run by default) the initial extraction of a large book: the
   sandbox at scale 140 (a 200,000-risk organisation), 50 ms a request, against the ideal, with the
   process's memory sampled as the book is fetched.
Writes ``bench/results/results.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import data

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEMS = ("ours", "ours_delta", "duckdb_native", "dlt_parquet", "dlt_default")


def load_run(system: str, payload: Path, items: int) -> dict:
    extra = [str(data.changed_payload(items))] if system == "ours_delta" else []
    with tempfile.TemporaryDirectory(prefix=f"bench-{system}-") as work:
        out = subprocess.run([sys.executable, "-m", "bench.load", system, str(payload), work, str(items), *extra],
                             capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"system": system, "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


PART = """import json, sys
from bench import extract
print(json.dumps(getattr(extract, sys.argv[1])(**json.loads(sys.argv[2]))))"""


def in_fresh_process(function: str, kwargs: dict) -> dict:
    """``bench.extract.<function>(**kwargs)`` in a process of its own: each part starts from a clean
    Python, and Dagster's process-wide state (the current instance's storage) never leaks from one
    part's instance into the next."""
    out = subprocess.run([sys.executable, "-c", PART, function, json.dumps(kwargs)], stdout=subprocess.PIPE,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark part {function}({kwargs}) failed with exit status {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    # which interpreter: a distribution's optimised build and one compiled with the defaults differ here
    return {"cpus": os.cpu_count(), "memory_gib": round(mem, 1), "cpu": cpu, "python": platform.python_version(),
            "python_executable": os.path.realpath(sys.executable)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="risk documents per landed answer")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--skip-dlt-default-above", type=int, default=200_000,
                        help="dlt's default configuration needs about 45 GB of memory per million rows here")
    parser.add_argument("--extract-scale", type=float, default=1.0, help="sandbox scale of the extraction run")
    parser.add_argument("--large-scale", type=float, default=140.0, help="sandbox scale of the large book (--parts large)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--sync-scale", type=float, default=1.0, help="sandbox scale of the end-to-end syncs")
    parser.add_argument("--many-organisations", type=int, default=20,
                        help="organisations of the second end-to-end run (0 skips it)")
    parser.add_argument("--out", type=Path, default=RESULTS / "results.json")
    parser.add_argument("--quick", action="store_true",
                        help="every part at a small size (300 risks, scale 0.05 and 0.1, 4 organisations, the large book "
                             "at scale 0.05): "
                             "that the harness works, not figures to report")
    parser.add_argument("--parts", default="load,extraction,sync",
                        help="which parts to run (load, extraction, sync, large); the others keep their figures in --out")
    args = parser.parse_args(argv)
    parts_asked = set(args.parts.split(","))
    changed = 0.01
    if args.quick:
        args.sizes, args.extract_scale, args.latency_ms = "300", 0.05, 5.0
        args.sync_scale, args.many_organisations = 0.1, 4
        changed = 0.1  # a tenth of the documents: 1% of this small book is often none
        args.large_scale = 0.05
        parts_asked.add("large")

    results: dict = {"machine": machine(), "load": [], "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "quick": args.quick}
    systems = args.systems.split(",")
    if (not parts_asked >= {"load", "extraction", "sync"} or set(systems) != set(SYSTEMS)) and args.out.exists():
        kept = json.loads(args.out.read_text())  # the parts and systems not asked for keep what they measured
        results = {**kept, **results, "parts_run": sorted(parts_asked), "systems_run": systems,
                   "kept_from": kept.get("started"),
                   "load": [r for r in kept.get("load", []) if "load" not in parts_asked or r["system"] not in systems]}

    def save() -> None:
        """Written after every part: a part that fails later loses nothing gathered before it."""
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".part")
        tmp.write_text(json.dumps(results, indent=1))
        os.replace(tmp, args.out)

    for size in [int(s) for s in args.sizes.split(",")] if "load" in parts_asked else []:
        payload = data.risks_payload(size)
        for system in systems:
            if system == "dlt_default" and size > args.skip_dlt_default_above:
                results["load"].append({"system": system, "rows": size, "skipped": "memory"})
                continue
            run = load_run(system, payload, size)
            run["rows"] = size
            if system == "ours_delta" and "delta_seconds" in run:
                run["seconds"] = run["delta_seconds"]  # the second load only: the next day's answer
            results["load"].append(run)
            print(f"load {size:>9,} {system:<14} {run.get('seconds', float('nan')):8.2f} s "
                  f"{run.get('peak_rss_mb', float('nan')):8.0f} MB", file=sys.stderr)
            save()
    parts = [("extraction", "extraction", {"scale": args.extract_scale, "latency_ms": args.latency_ms}),
             ("incremental", "incremental", {"scale": args.sync_scale, "changed": changed}),
             ("incremental_latency", "incremental",
              {"scale": args.sync_scale, "latency_ms": args.latency_ms, "changed": changed})]
    if args.many_organisations:
        parts.append(("incremental_many", "incremental",
                      {"scale": args.sync_scale, "organisations": args.many_organisations, "changed": changed}))
        parts.append(("incremental_many_latency", "incremental",
                      {"scale": args.sync_scale, "organisations": args.many_organisations,
                       "latency_ms": args.latency_ms, "changed": changed}))
    parts.append(("large_book", "extraction", {"scale": args.large_scale, "latency_ms": args.latency_ms,
                                               "sample_seconds": 0.5 if args.quick else 30.0}))
    for name, function, kwargs in parts:
        if {"extraction": "extraction", "large_book": "large"}.get(name, "sync") not in parts_asked:
            continue
        results[name] = in_fresh_process(function, kwargs)
        save()
        print(f"{name} done", file=sys.stderr)
    print(table(results))
    return 0


def table(results: dict) -> str:
    lines = ["| rows | system | seconds | rows/s | peak RSS MB | vs ours |", "|---:|---|---:|---:|---:|---:|"]
    by_size: dict[int, dict[str, dict]] = {}
    for run in results["load"]:
        by_size.setdefault(run["rows"], {})[run["system"]] = run
    for size, runs in by_size.items():
        ours = runs.get("ours", {}).get("seconds")
        for system, run in runs.items():
            if "seconds" not in run:
                lines.append(f"| {size:,} | {system} | {run.get('skipped') or run.get('error')} | | | |")
                continue
            ratio = f"{run['seconds'] / ours:.1f}x" if ours else ""
            lines.append(f"| {size:,} | {system} | {run['seconds']:.2f} | {size / run['seconds']:,.0f} | "
                         f"{run['peak_rss_mb']:.0f} | {ratio} |")
    ex = results.get("extraction")
    lines += [] if ex is None else ["", f"Extraction: {ex['requests']:,} requests, {ex['seconds']:.1f} s against an ideal of "
              f"{ex['ideal_seconds']:.1f} s ({ex['seconds'] / ex['ideal_seconds']:.2f}x), "
              f"{ex['latency_ms']:.0f} ms a request, concurrency {ex['concurrency']}."]
    big = results.get("large_book")
    if big:
        rss = [s["rss_mb"] for s in big.get("memory_samples", [])]
        lines.append(f"Large book (scale {big['scale']:g}, largest list {big.get('largest_list', 0):,} risks): "
                     f"{big['requests']:,} requests, {big['seconds']:.1f} s against an ideal of {big['ideal_seconds']:.1f} s "
                     f"({big['seconds'] / big['ideal_seconds']:.2f}x); resident memory "
                     f"{min(rss, default=0):.0f}-{max(rss, default=0):.0f} MB over {len(rss)} samples, peak {big.get('peak_rss_mb')} MB.")
    for key in ("incremental", "incremental_latency", "incremental_many", "incremental_many_latency"):
        if key in results:
            lines.append(sync_line(results[key]))
    return "\n".join(lines)


def sync_line(inc: dict) -> str:
    def split(label: str) -> str:
        parts = inc[f"{label}_split"]
        return (f"network {parts['network']:.1f} s, load {parts['load']:.1f} s, "
                f"Dagster, discovery and change check {parts['dagster_and_discovery']:.1f} s")
    def money(label: str) -> str:
        if f"{label}_mi_requests" not in inc:
            return ""
        return (f", of which {inc[f'{label}_mi_requests']} MI report and "
                f"{inc[f'{label}_defined_data_requests']:,} Defined Data")
    return (f"End to end, {inc['organisations']} organisations, scale {inc['scale']}, "
            f"{inc.get('latency_ms', 0):.0f} ms a request: full sync {inc['full_seconds']:.1f} s "
            f"({inc['full_requests']:,} requests{money('full')}; {split('full')}); nothing changed "
            f"{inc['unchanged_seconds']:.1f} s ({inc['unchanged_requests']} requests{money('unchanged')}, "
            f"{inc['unchanged_seconds'] / inc['full_seconds']:.0%}; {split('unchanged')}); "
            f"{inc.get('changed_fraction', 0.01):.0%} changed "
            f"{inc['changed_seconds']:.1f} s ({inc['changed_requests']} requests{money('changed')}, "
            f"{inc['changed_seconds'] / inc['full_seconds']:.0%}).")


if __name__ == "__main__":
    sys.exit(main())
