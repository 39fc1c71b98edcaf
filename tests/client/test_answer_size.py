"""Answers stream to their landing file as they arrive: memory stays flat whatever an answer's size, and an
answer over ``WHITESPACE_MAX_ANSWER_MB`` fails that request only, saying so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.client import WhitespaceClient
from pipelines.client.errors import AnswerTooLarge
from pipelines.landing import raw
from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SUMO_USER_NAME, SandboxServer
from tests.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]
LAND = """
import resource, sys, tracemalloc
from pathlib import Path
from pipelines.client import Settings, WhitespaceClient
from pipelines.landing import raw
settings = Settings.from_values(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], user_name=sys.argv[5])
with WhitespaceClient(settings) as client:
    tracemalloc.start()
    landed = raw.download_corporate(client, Path(sys.argv[6]))
    peak = tracemalloc.get_traced_memory()[1]
print(landed.size, landed.items, len(landed.set_aside), peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
"""Lands the corporate list in a process of its own; prints its size, elements, elements set aside, the most
memory Python held at once while landing it, and the process's peak resident size (KiB)."""


def test_an_answer_over_the_limit_fails_that_request_only_and_leaves_nothing(sandbox, waits, tmp_path) -> None:
    from tests.pipeline.conftest import SUMO_IDS

    sandbox.set_faults(corporate_padding_mb=3)
    with WhitespaceClient(settings_for(sandbox, max_answer_bytes=2_000_000)) as client:
        with pytest.raises(AnswerTooLarge, match="larger than WHITESPACE_MAX_ANSWER_MB allows \\(2 MB"):
            raw.download_corporate(client, tmp_path)
        assert not list(tmp_path.rglob("*.json*")), "nothing of it kept, not even a part"
        listed = raw.download_risk_list(client.for_user(SUMO_IDS[0]), tmp_path, SUMO_IDS[0])  # the others go on
        assert listed.items > 0
    assert waits == [], "not retried: the same answer would come again"


def test_landing_a_huge_answer_keeps_memory_flat(tmp_path) -> None:
    """A 500 MB corporate answer took the process to 1.5 GB (read whole, parsed, encoded again to land it)."""
    megabytes = 250
    with SandboxServer(seed=2, scale=0.05) as server:
        server.set_faults(corporate_padding_mb=megabytes)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", LAND, server.sync_url, BUCKET, server.api_url, SUMO_REFRESH_TOKEN,
                              SUMO_USER_NAME, str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    size, items, aside, held, peak_kib = map(int, out.stdout.split())
    assert size > megabytes * 1_000_000 and aside == 1, "landed whole, its one huge company set aside"
    # What Python held at once, counted allocation by allocation (the resident size also counts what the
    # allocator has not handed back yet, which the machine's load moves): a 250 MB answer in 100 MB.
    assert held < 100_000_000, f"held {held / 1e6:.0f} MB at once (resident peak {peak_kib / 1024:.0f} MB)"
