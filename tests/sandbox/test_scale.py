"""The sandbox scales to hundreds of thousands of risks without holding them in memory."""

from __future__ import annotations

import tracemalloc

import httpx

from sandbox import SUMO_REFRESH_TOKEN, SandboxServer, documents
from sandbox.world import World
from tests.sandbox.helpers import SUMO, id_token


def peak_bytes_streaming(scale: float) -> tuple[int, int]:
    world = World(seed=2, scale=scale)
    tracemalloc.start()
    try:
        rows = sum(1 for _ in documents.risk_rows(world, "GAILBKR"))
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_scale() -> None:
    small_rows, small_peak = peak_bytes_streaming(4)
    large_rows, large_peak = peak_bytes_streaming(16)
    assert large_rows > 3.5 * small_rows
    assert large_peak < 2 * small_peak, (small_peak, large_peak)


def test_a_200k_risk_organisation_streams_its_list() -> None:
    with SandboxServer(scale=140) as server:
        assert server.world.total_roots >= 160_000
        token = id_token(server, SUMO_REFRESH_TOKEN)
        headers = {"Authorization": f"Bearer {token}", "UserID": SUMO.memberships[0].user_id}
        with httpx.stream("GET", f"{server.api_url}/risks", headers=headers, timeout=30) as r:
            assert r.headers["Transfer-Encoding"] == "chunked"
            first = next(r.iter_bytes())
        assert first.startswith(b'[{"ContractType"')
