"""Ids from the platform and the documents that carry them, under hostile input: no id names a path
outside the landing, and no element of an answer makes its scan raise."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.client import documents
from pipelines.client.documents import InvalidId
from pipelines.client.jsonscan import inspect_json_array
from pipelines.landing import raw

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ids = st.one_of(
    st.text(max_size=60),
    st.builds(lambda tail: "MU" + tail, st.text(max_size=60)),
    st.builds(lambda a, b: f"MU{a}{b}", st.sampled_from(["../", "..", "/", "\\", "%2e%2e/", "\x00", "~", "."]),
              st.text("abc/.-", max_size=20)),
    st.sampled_from(["MU../../../escaped", "MU1F0E2A10-5C3B-4E4A-9A1D-0B6C2D3E4F50", "", "_", "MU", "MU-", "MU/x"]),
)


@SETTINGS
@given(user_id=ids)
def test_no_id_names_a_path_outside_the_landing(tmp_path_factory, user_id: str) -> None:
    landing = tmp_path_factory.getbasetemp() / "raw"
    makers = (lambda: raw.organisation_dir(landing, user_id), lambda: raw.details_dir(landing, user_id),
              lambda: raw.mi_dir(landing, user_id),
              lambda: raw.landing_path(landing, user_id, "/risks", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    for make in makers:
        try:
            path = make()
        except InvalidId:
            assert user_id != "" and not documents.is_user_id(user_id)
            continue
        resolved = path.resolve()
        assert resolved.is_relative_to(landing.resolve()), (user_id, path)
        assert resolved.relative_to(landing.resolve()).parts[0] == (user_id or "_")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)
risk_ids = st.one_of(st.just("IC1F0E2A10-5C3B::FO"), st.text(max_size=20), st.integers())
elements = st.one_of(
    json_values,
    st.builds(lambda i, extra: {"id": i, **extra}, risk_ids, st.dictionaries(st.text(max_size=6), json_values, max_size=3)),
    st.builds(lambda key, i: {key: i}, st.sampled_from(["Id", "ID", "iD"]), risk_ids),
)


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@SETTINGS
@given(items=st.lists(elements, max_size=8), deep_at=st.sets(st.integers(0, 8), max_size=3),
       depth=st.sampled_from([65, 900, 3000]), chunk=st.sampled_from([7, 64, 1 << 20]))
def test_every_element_is_counted_and_exactly_the_bad_ones_are_set_aside(tmp_path_factory, items, deep_at, depth,
                                                                          chunk) -> None:
    texts = [json.dumps(e) for e in items]
    for k in sorted(deep_at):
        if k <= len(texts):
            texts.insert(k, '{"id":"IC1::FO","x":' + "[" * depth + '"]\\"[{"' + "]" * depth + "}")
    path = Path(tmp_path_factory.mktemp("answer")) / "risks.json"
    path.write_text("[" + ", ".join(texts) + "]")
    count, aside = inspect_json_array(path, documents.risk_list_problem, chunk=chunk)
    assert count == len(texts)
    expected = set()
    for position, text in enumerate(texts, 1):
        deep = text.startswith('{"id":"IC1::FO","x":[[')
        if deep or _depth(json.loads(text)) > documents.MAX_DEPTH or documents.has_nul(json.loads(text)) \
                or documents.risk_list_problem(json.loads(text)):
            expected.add(position)
    assert {a.position for a in aside} == expected
    assert all(a.reason.startswith("nested deeper") for a in aside if texts[a.position - 1].startswith('{"id":"IC1::FO","x":[['))


def test_a_too_deep_element_keeps_its_id_and_its_neighbours_are_read_whole(tmp_path) -> None:
    path = tmp_path / "risks.json"
    path.write_text('[{"id":"IC2"},{"id":"IC1::FO","x":' + "[" * 3000 + "]" * 3000 + '},{"id":"IC3"}]')
    count, aside = inspect_json_array(path, documents.risk_list_problem, chunk=100)
    assert count == 3
    assert [(a.position, a.document_id) for a in aside] == [(2, "IC1::FO")]


@pytest.mark.parametrize("value", ["MU../x", "MU1 2", "MU\x00", "IC1", "", None])
def test_a_refused_mu_id_is_a_clear_error(value) -> None:
    if value == "":
        assert documents.check_user_id(value) == ""
        return
    with pytest.raises(InvalidId, match="outside the platform's id grammar"):
        documents.check_user_id(value)


@SETTINGS
@given(items=st.lists(elements, max_size=8), limit=st.integers(2, 80), chunk=st.sampled_from([3, 16, 1 << 20]))
def test_an_element_over_the_size_limit_is_passed_over_whole_whatever_the_chunks(tmp_path_factory, items, limit,
                                                                                  chunk) -> None:
    """An element longer than the limit is read past a piece at a time (never held whole): the same count,
    positions, lengths and digests as when it is read whole."""
    import hashlib

    texts = [json.dumps(e) for e in items]
    path = Path(tmp_path_factory.mktemp("answer")) / "big.json"
    path.write_text("[" + ",".join(texts) + "]")
    count, aside = inspect_json_array(path, max_bytes=limit, chunk=chunk)
    assert count == len(texts)
    large = {a.position: a for a in aside if a.reason.startswith("larger than")}
    assert set(large) == {k for k, t in enumerate(texts, 1) if len(t) > limit}
    for position, a in large.items():
        text = texts[position - 1]
        assert (a.chars, a.digest) == (len(text), hashlib.md5(text.encode()).hexdigest())
