"""The value rules every loader types with (``pipelines/warehouse/macros.py``), under hostile text:
nothing raises, nothing is guessed, and what parses is exactly what the text says."""

from __future__ import annotations

import re
from decimal import Decimal

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.warehouse import macros

WS = "[ \t\n\f\r]"
"""RE2's ``\\s`` (DuckDB's regular expressions): ASCII white space without the vertical tab."""
MONEY = re.compile(rf"^{WS}*(?:([A-Za-z]{{3}}){WS}*)?([0-9]{{1,3}}(?:,[0-9]{{3}})+|[0-9]+)(\.[0-9]{{1,2}})?{WS}*"
                   rf"(?:\({WS}*[0-9.]+{WS}*%{WS}*\))?{WS}*\Z")
PCT = re.compile(rf"^{WS}*[0-9]+(\.[0-9]{{1,8}})?{WS}*%?{WS}*\Z")
AMOUNT_LIMIT = Decimal(10) ** 18
"""DECIMAL(20, 2) holds 18 integer digits."""
PCT_LIMIT = Decimal(10) ** 10
"""DECIMAL(18, 8) holds 10."""


@pytest.fixture(scope="module")
def conn():
    with duckdb.connect() as c:
        macros.install(c)
        yield c


def digits(max_size: int = 30) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=1, max_size=max_size)


hostile = st.one_of(
    st.text(max_size=40),  # any unicode, NUL and control characters included
    st.builds(lambda ccy, n, dec, sep: f"{ccy} {format(int(n), ',' if sep else '')}{dec}",
              st.sampled_from(["USD", "EUR", "GBP", "usd", "", "XXX", "€", "US$"]), digits(),
              st.sampled_from(["", ".5", ".55", ".555", ",00", "e10", "E-3"]), st.booleans()),
    st.builds(lambda a, b: f"{a}.{b}", digits(), digits(12)),
    st.builds(lambda a, b: f"{a},{b}", digits(), digits(3)),  # a decimal comma, or a thousands separator?
    st.builds(lambda a: f"-{a}", digits()),
    st.builds(lambda a, e: f"{a}e{e}", digits(6), st.integers(-400, 400)),
    st.sampled_from(["NaN", "Infinity", "-0", "1.250.000,00", "1 250 000", "٣٤٥", "１２３", "20240301", "0",
                     "99999999999999999999999999999999999999999", "\x00", "12\x005", "💷 100"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile, ccy=st.sampled_from([None, "", "USD", "eur", "GBP"]))
def test_no_text_makes_a_value_rule_raise_and_what_parses_is_what_the_text_says(conn, text: str, ccy) -> None:
    amount, currency, in_ccy, pct, ts, date, flag = conn.execute(
        "SELECT ws_amount($1), ws_currency($1), ws_amount_in($1, $2), ws_pct($1), ws_ts($1), ws_date($1), ws_bool($1)",
        [text, ccy]).fetchone()
    money = MONEY.fullmatch(text)
    if amount is not None:
        assert money, text
        assert amount == Decimal(money.group(2).replace(",", "") + (money.group(3) or "")), text
        assert abs(amount) < AMOUNT_LIMIT
    elif money:
        assert Decimal(money.group(2).replace(",", "")) >= AMOUNT_LIMIT, f"{text!r} is an amount that fits"
    if in_ccy is not None:
        assert in_ccy == amount
        assert currency is None or not ccy or currency == ccy.upper(), (text, ccy)
    elif amount is not None:
        assert currency and ccy and currency != ccy.strip().upper(), "refused only for naming another currency"
    if pct is not None:
        assert PCT.fullmatch(text) and pct == Decimal(re.search(r"[0-9]+(\.[0-9]+)?", text).group(0))
    elif PCT.fullmatch(text):
        assert Decimal(re.search(r"[0-9]+(\.[0-9]+)?", text).group(0)) >= PCT_LIMIT, f"{text!r} fits"
    if re.fullmatch(rf"{WS}*[0-9]+(\.[0-9]+)?{WS}*", text) and Decimal(text.strip()) < Decimal(10) ** 9:
        assert ts is None, f"{text!r} is no epoch time of the platform's"
    assert flag in (None, True, False) and (date is None or 1 <= date.year <= 294247)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(integer=st.integers(0, 10**30), cents=st.integers(0, 99), grouped=st.booleans())
def test_an_amount_is_exact_while_it_fits_and_null_once_it_does_not(conn, integer: int, cents: int, grouped: bool) -> None:
    text = f"GBP {format(integer, ',' if grouped else '')}.{cents:02d}"
    [(amount,)] = conn.execute("SELECT ws_amount(?)", [text]).fetchall()
    exact = Decimal(f"{integer}.{cents:02d}")
    assert amount == (exact if exact < AMOUNT_LIMIT else None)


def test_a_date_without_dashes_is_not_read_as_an_epoch_time(conn) -> None:
    got = conn.execute("SELECT ws_ts('20240301'), ws_ts('0'), ws_ts('1700000000'), ws_ts('1700000000000')").fetchone()
    assert got[0] is None and got[1] is None
    assert got[2] == got[3] and got[2].year == 2023


def test_the_parse_checks_name_every_typed_field_that_did_not_parse(tmp_path) -> None:
    """Contracts' flags, timestamps and dates and companies' flags and timestamps were NULL with nothing said
    when their text did not parse; now each table's check names them (the text stays in raw)."""
    from pipelines.warehouse import db, quality

    with db.session(tmp_path / "w.duckdb") as conn:
        conn.execute("""INSERT INTO contracts (root_id, raw, created_at, updated_at, is_facility)
                        VALUES ('IC1', '{"createdAt": "yesterday", "updatedAt": "2024-03-01 10:00:00",
                                         "control": {"isFacility": "maybe"}}', NULL, TIMESTAMP '2024-03-01 10:00:00', NULL),
                               ('IC2', '{"createdAt": "TBA", "control": {}}', NULL, NULL, NULL)""")
        outcome = quality.unparsed_values(conn, quality.CONTRACT_VALUES)
        assert not outcome.passed
        assert outcome.metadata["unparsed"] == {"createdAt": {"values": 1, "examples": ["yesterday"]},
                                                "control.isFacility": {"values": 1, "examples": ["maybe"]}}
        conn.execute("""INSERT INTO organisations (company_id, raw, is_offline, updated_at)
                        VALUES ('X', '{"isOffline": "sometimes", "updatedAt": 20240301}', NULL, NULL)""")
        found = quality.unparsed_values(conn, quality.REFERENCE_VALUES).metadata["unparsed"]
        assert set(found) == {"isOffline", "updatedAt"}
