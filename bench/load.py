"""One normalise-and-load run of one system, in its own process: ``python -m bench.load SYSTEM FILE DIR``.

Prints one JSON line: rows per table, seconds, and the process's peak resident memory. Each system's
modules are imported before its clock starts (``import_seconds``, reported apart): a pipeline pays
for them once per process, not once per load. This project's warehouse file is created before its
clock starts too (``create_seconds``): every table of the schema with its comments, once in the
warehouse's life, not once per load. DuckDB alone creates its three tables inside its clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import resource
import sys
import time
from pathlib import Path

USER_ID = "MU00000000-0000-4000-8000-000000000001"
ITEMS: list[int] = []  # the element count, known from the download in the pipeline: not timed here
CHANGED: list[str] = []  # ours_delta: the next day's answer
TIMINGS: dict[str, float] = {}


def _load(work: Path, path: Path, sha256: str, tables: tuple[str, ...],
          checked: bool = False) -> tuple[dict[str, int], object, float]:
    """This project's loader on the landed file ``path`` into ``work``'s warehouse: each table's rows, the
    load's result and its seconds (the item count comes from the download's own check). ``checked``: as
    the ``risk_tables`` step runs it, the answer's ids counted beside the load and the risk checks after
    it (their seconds in ``TIMINGS['checks_seconds']``)."""
    from pipelines.client.jsonscan import scan_json_array
    from pipelines.landing import raw
    from pipelines.warehouse import db, quality, risks

    if checked:
        from pipelines.defs import checks  # imports Dagster: not timed
    items = ITEMS[0] if ITEMS else scan_json_array(path)
    landed = raw.Landed(path, USER_ID, "/risks", dt.datetime.now(dt.UTC), sha256, path.stat().st_size, items)
    started = time.perf_counter()
    with db.session(work / "ours.duckdb") as conn, contextlib.ExitStack() as stack:
        api_ids = stack.enter_context(db.beside(conn, quality.api_distinct_ids, str(path), items)) if checked else None
        result = risks.load_list(conn, landed, path.name)
        seconds = time.perf_counter() - started
        if checked:
            evaluated = checks.evaluate(checks.RISKS, conn, user_id=USER_ID, landed=landed, drift=result.drift,
                                        api_ids=api_ids)
            TIMINGS["checks_seconds"] = time.perf_counter() - started - seconds
            TIMINGS["checks_passed"] = all(e.passed for e in evaluated)
        return ({t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables},  # noqa: S608 - constant names
                result, seconds)


def ours(payload: Path, work: Path) -> dict[str, int]:
    """This project's loader on the landed file."""
    counts, _, TIMINGS["load_only"] = _load(work, payload, "bench", ("risks", "risk_channels", "risk_visibility"))
    return counts


def ours_delta(payload: Path, work: Path) -> dict[str, int]:
    """This project's loader on the next day's answer (``CHANGED``: one document in a hundred revised) into a
    warehouse that holds the first one: only the second load is timed, run as the ``risk_tables`` step runs
    it (the answer's ids counted beside it), and the risk checks after it apart."""
    started = time.perf_counter()
    ours(payload, work)
    first = time.perf_counter() - started
    counts, result, seconds = _load(work, Path(CHANGED[0]), "bench-changed",
                                    ("risks", "risk_channels", "risk_visibility", "risk_history"), checked=True)
    TIMINGS.update(delta_seconds=seconds, first_seconds=first, changed=result.changed, added=result.added,
                   parsed=result.parsed, delta=result.delta)
    return counts


def _dlt(payload: Path, work: Path, file_format: str | None) -> dict[str, int]:
    import dlt

    from pipelines.client.jsonscan import iter_json_array

    pipeline = dlt.pipeline(pipeline_name=f"bench_{file_format or 'default'}", pipelines_dir=str(work / "dlt"),
                            destination=dlt.destinations.duckdb(str(work / f"dlt_{file_format or 'default'}.duckdb")),
                            dataset_name="whitespace")
    kwargs = {"loader_file_format": file_format} if file_format else {}
    pipeline.run(iter_json_array(payload), table_name="risks", **kwargs)
    with pipeline.sql_client() as client:
        return {t: client.execute_sql(f"SELECT count(*) FROM {t}")[0][0] for t in ("risks", "risks__channels")}  # noqa: S608


def duckdb_native(payload: Path, work: Path) -> dict[str, int]:
    """DuckDB alone: read_json_objects, the same columns extracted and typed, channels unnested."""
    import duckdb

    with duckdb.connect(str(work / "native.duckdb")) as conn:
        conn.execute(
            """CREATE TABLE risks AS
               SELECT v[1] AS risk_id, split_part(v[1], '::', 1) AS root_id, v[2] AS rev, v[3] AS doc_type,
                      trim(v[4]) AS umr, trim(v[5]) AS insured_name, v[6] AS status, v[7] AS contract_type,
                      CAST(v[8] AS BOOLEAN) AS is_facility, v[9] AS placing_broker_channel,
                      try_strptime(v[10], '%Y-%m-%d %H:%M:%S') AS created_at,
                      coalesce(try_strptime(v[11], '%Y-%m-%d %H:%M:%S'), CAST(TRY_CAST(v[11] AS TIMESTAMPTZ) AS TIMESTAMP)) AS updated_at,
                      CAST(v[12] AS VARCHAR[]) AS channels, json AS raw
               FROM (SELECT json, json_extract_string(json, ['$.id', '$.rev', '$.type', '$.umr', '$.InsuredName',
                       '$.Status', '$.ContractType', '$.IsFacility', '$.placingBrokerChannel', '$.createdAt',
                       '$.updatedAt', '$.channels']) AS v
                     FROM read_json_objects(?, format = 'array'))""",
            [str(payload)],
        )
        conn.execute(
            """CREATE TABLE risk_channels AS
               SELECT risk_id, pos - 1 AS position, ch AS channel, upper(split_part(ch, '_', 1)) AS company_id,
                      substr(ch, strpos(ch, '_') + 1) AS team_id
               FROM (SELECT risk_id, unnest(channels) AS ch, unnest(range(1, len(channels) + 1)) AS pos FROM risks)"""
        )
        conn.execute("CREATE TABLE risk_visibility AS SELECT risk_id, ? AS user_id, now() AS synced_at FROM risks",
                     [USER_ID])
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("risks", "risk_channels", "risk_visibility")}


_OURS = ("pipelines.client.jsonscan", "pipelines.landing.raw", "pipelines.warehouse.db", "pipelines.warehouse.quality",
         "pipelines.warehouse.risks")
IMPORTS = {"ours": _OURS, "ours_delta": (*_OURS, "pipelines.defs.checks"), "dlt_default": ("dlt",),
           "dlt_parquet": ("dlt",), "duckdb_native": ("duckdb",)}
"""What each system imports: done before its clock starts."""

SYSTEMS = {
    "ours": ours,
    "ours_delta": ours_delta,
    "dlt_default": lambda p, w: _dlt(p, w, None),
    "dlt_parquet": lambda p, w: _dlt(p, w, "parquet"),
    "duckdb_native": duckdb_native,
}


def main() -> None:
    system, payload, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if len(sys.argv) > 4:
        ITEMS.append(int(sys.argv[4]))
    if len(sys.argv) > 5:
        CHANGED.append(sys.argv[5])
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for module in IMPORTS[system]:
        importlib.import_module(module)
    TIMINGS["import_seconds"] = time.perf_counter() - started
    if system.startswith("ours"):
        from pipelines.warehouse import db

        started = time.perf_counter()
        with db.session(work / "ours.duckdb"):
            TIMINGS["create_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    tables = SYSTEMS[system](payload, work)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"system": system, "seconds": seconds, "peak_rss_mb": peak_mb, "tables": tables, **TIMINGS}))


if __name__ == "__main__":
    main()
