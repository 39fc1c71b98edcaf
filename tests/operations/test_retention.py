"""Pruning the raw landing: a rebuild from what is left gives the same warehouse as before pruning; an
answer not loaded yet and a download still being written are never deleted."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pipelines import config
from pipelines.app import retention
from pipelines.app.sync import rebuild
from pipelines.defs.resources import for_sandbox
from pipelines.extract import mireport
from pipelines.landing import raw
from sandbox import SandboxServer
from tests.pipeline.conftest import SUMO_IDS, Pipeline, rows_of

LOAD_LOGS = {"detail_loads", "mi_report_loads"}
"""Which landed files a load read: fewer after pruning, by design."""


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    """A small book (about 170 placements): every kind of answer, superseded or not, in a few seconds."""
    with SandboxServer(seed=11, scale=0.15) as server:
        yield Pipeline(server, tmp_path, monkeypatch)


def snapshot(db_path: Path) -> dict[str, list[tuple]]:
    return rows_of(db_path, skip_tables=LOAD_LOGS)


def rebuilt(raw_dir: Path, where: Path) -> dict[str, list[tuple]]:
    """A new warehouse rebuilt from a copy of ``raw_dir``."""
    shutil.copytree(raw_dir, where / "raw")
    warehouse = config.WarehouseConfig(path=where / "warehouse.duckdb")
    rebuild(warehouse, log=lambda *_: None)
    return snapshot(warehouse.path)


def test_a_rebuild_after_pruning_gives_the_same_warehouse(pipeline, tmp_path: Path) -> None:
    pipeline.start_from("mi")
    # every placement changes (the first answers are wholly superseded), then a tenth (the second
    # answers are still needed for the other nine tenths)
    for changed in (1.0, 0.1):
        pipeline.server.advance(changed_fraction=changed, new_roots=5, lines_changed_fraction=changed)
        pipeline.sync_all()
        pipeline.mi()
    org = pipeline.raw_dir / SUMO_IDS[0]
    abandoned = org / "risks" / ".part-killed.json"
    abandoned.write_text("[{")
    hours_ago = time.time() - 2 * 3600
    os.utime(abandoned, (hours_ago, hours_ago))
    writing = org / raw.DETAILS_FOLDER / "20990101T000000000000Z.part"
    writing.write_text("{")
    files_before = sorted(p for p in pipeline.raw_dir.rglob("*") if p.is_file())
    before = rebuilt(pipeline.raw_dir, tmp_path / "before")
    young = retention.prune(pipeline.warehouse, keep_days=30, log=lambda *_: None)
    assert (young.files, young.partial) == (0, 1), "answers younger than the retention are all kept"
    abandoned.write_text("[{")
    os.utime(abandoned, (hours_ago, hours_ago))

    pruned = retention.prune(pipeline.warehouse, keep_days=0, log=lambda *_: None)

    assert pruned.partial == 1 and not abandoned.exists() and writing.exists()
    kinds = {folder: len(list((org / folder).glob("*.json*"))) for folder in (raw.DETAILS_FOLDER, raw.MI_FOLDER)}
    assert kinds == {raw.DETAILS_FOLDER: 2 + 2, raw.MI_FOLDER: 2}, "the first answers went; index and feed stay"
    lists = sorted(p.name for p in (org / "risks").glob("*.json") if not p.name.endswith(".meta.json"))
    assert len(lists) == retention.LISTS_KEPT, lists
    files_after = sorted(p for p in pipeline.raw_dir.rglob("*") if p.is_file())
    assert len(files_after) < len(files_before)
    assert (org / raw.DETAILS_FOLDER / "index.json").exists() and (org / raw.DETAILS_FOLDER / "feed.json").exists()
    after = rebuilt(pipeline.raw_dir, tmp_path / "after")
    assert after.keys() == before.keys()
    assert [t for t in before if before[t] != after[t]] == []
    assert sum(len(rows) for rows in after.values()) > 1000, "a real warehouse was compared"

    # An MI answer landed but not loaded yet is never deleted, however old; the landing keeps working.
    pipeline.server.advance(changed_fraction=0.1, new_roots=5, lines_changed_fraction=0.2)
    loaded = set(pipeline.raw_dir.glob(f"*/{raw.MI_FOLDER}/*.json"))
    with for_sandbox(pipeline.server, pipeline.warehouse)["whitespace"].client() as client:
        mireport.extract(client, SUMO_IDS, pipeline.raw_dir)
    pending = set(pipeline.raw_dir.glob(f"*/{raw.MI_FOLDER}/*.json")) - loaded
    assert pending
    retention.prune(pipeline.warehouse, keep_days=0, log=lambda *_: None)
    assert pending <= set(pipeline.raw_dir.glob(f"*/{raw.MI_FOLDER}/*.json"))
    assert pipeline.mi().success and all(r.success for r in pipeline.sync_all())
