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


def test_many_organisations_for_partition_scale_tests() -> None:
    """``--organisations 20`` grows the SUMO login to twenty organisations, each with its own book;
    the demo's three keep theirs. Run in a process of its own: the option changes the sandbox's registry."""
    from pipelines.client import Settings, WhitespaceClient
    from sandbox import BUCKET, SUMO_USER_NAME, sandbox_process

    with sandbox_process(organisations=20) as url:
        settings = Settings.from_values(f"{url}/sync", BUCKET, f"{url}/api", SUMO_REFRESH_TOKEN,
                                        user_name=SUMO_USER_NAME)
        with WhitespaceClient(settings) as client:
            orgs = client.discover_organisations()
            sizes = {o.company_id: len(client.for_user(o.user_id).get_json("/risks")) for o in orgs}
            broker = client.for_user(orgs[0].user_id)
            roots = list(dict.fromkeys(r["id"].split("::")[0] for r in broker.get_json("/risks")))[:300]
            carriers = [len({line["contents"][0]["stamperChannel"] for line in broker.get_json(
                f"/lines/{root}/combinedSets")}) for root in roots]
    assert len(orgs) == 20 and len({o.user_id for o in orgs}) == 20
    assert {m.company_id for m in SUMO.memberships} <= set(sizes)
    assert all(n > 0 for n in sizes.values()), sizes
    assert max(carriers) >= 4, "some placements have four or more carriers, and their lines are served"
    demo = {c: len(list(documents.risk_rows(World(), c))) for c in ("GAILBKR", "WHITESAILS", "MCNEILLIEUWR")}
    assert sizes["WHITESAILS"] == demo["WHITESAILS"] and sizes["MCNEILLIEUWR"] == demo["MCNEILLIEUWR"]
