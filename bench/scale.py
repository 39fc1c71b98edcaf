"""A team's scale, simulated on this machine: ``python -m bench.scale`` (defaults: 20 logins x 10
organisations, the sandbox at scale 0.2, in its own process).

Two sandboxes with the same seed (the MI report's cursor is per sandbox), two databases in a private
PostgreSQL, two first syncs of every login's organisations: ``whitespace-etl sync`` (one writer) and
``whitespace-etl sync --writers 4``. Reports each one's wall time, organisations per minute and their
ratio, and whether the two warehouses are equal table by table (load times aside). Writes
``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox import BUCKET, sandbox_process
from tests.postgres import differences, postgres_tables, private_postgres

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def login_env(url: str, logins: int) -> dict[str, str]:
    names = [f"l{n:02d}" for n in range(1, logins + 1)]
    env = {"WHITESPACE_SYNC_URL": f"{url}/sync", "WHITESPACE_BUCKET": BUCKET, "WHITESPACE_API_URL": f"{url}/api",
           "WHITESPACE_LOGINS": ",".join(names)}
    for n, name in enumerate(names, start=1):
        env[f"WHITESPACE_LOGIN_{name.upper()}_REFRESH_TOKEN"] = f"sandbox-renewable-login-{n:02d}"
        env[f"WHITESPACE_LOGIN_{name.upper()}_USER_NAME"] = f"Login {n:02d}"
    return env


def timed_sync(sandbox_url: str, database_url: str, folder: Path, logins: int, writers: int) -> dict:
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env.update(login_env(sandbox_url, logins), PYTHONPATH=str(ROOT), DAGSTER_HOME=str(home),
               WHITESPACE_WAREHOUSE=str(folder / "warehouse.duckdb"), WHITESPACE_WAREHOUSE_URL=database_url)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipelines.app.cli", "sync", "--writers", str(writers)], env=env,
                         cwd=folder, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"the sync with {writers} writer(s) failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    # organisations, not [ref]: "ok (first sync)" alone, or "ok (first sync, one run of N: …)" in a shared run
    runs = len(re.findall(r"^\[\d+/\d+\] .* ok \(first sync[,)]", out.stdout, re.M))
    return {"writers": writers, "seconds": round(seconds, 1), "organisation_runs": runs,
            "organisations_per_minute": round(runs / seconds * 60, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--organisations", type=int, default=10, help="per login")
    parser.add_argument("--scale", type=float, default=0.2, help="the sandbox's book (1: about 1,150 roots)")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--out", default=str(RESULTS / "scale.json"))
    args = parser.parse_args(argv)
    result: dict = {"logins": args.logins, "organisations_per_login": args.organisations, "scale": args.scale,
                    "cpus": os.cpu_count()}
    sandbox = {"scale": args.scale, "logins": args.logins, "login_organisations": args.organisations}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as work, private_postgres("one", "many") as urls:
        runs = []
        for writers, database in ((1, "one"), (args.writers, "many")):
            with sandbox_process(**sandbox) as url:
                folder = Path(work) / database
                folder.mkdir()
                runs.append(timed_sync(url, urls[database], folder, args.logins, writers))
                print(f"{writers} writer(s): {runs[-1]}", flush=True)
        found = differences(postgres_tables(urls["one"]), postgres_tables(urls["many"]))
    one, many = runs
    result.update(runs=runs, speedup=round(one["seconds"] / many["seconds"], 2), warehouses_equal=not found,
                  tables_that_differ=found)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
