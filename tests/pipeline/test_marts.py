"""The marts: built by their asset after a sync, tied back to the base tables by their checks, and
equal to what the sandbox knows about its own book."""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
from collections import Counter
from decimal import Decimal

import dagster as dg
import duckdb
import pytest

from models import MART_TABLES
from pipelines.warehouse import db, marts, quality
from sandbox.documents import mi_contract_type, shares
from tests.pipeline.conftest import check_results

GAILBKR_MU = "MU1F0E2A10-5C3B-4E4A-9A1D-0B6C2D3E4F50"
OPEN = {"QuotationRequest", "QuotationInPreparation", "QuotedByUnderwriter", "BindableQuote", "FirmOrder"}


def naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


@pytest.fixture
def built(pipeline):
    pipeline.start_from("mi")
    result = pipeline.marts()
    return pipeline, result


def test_marts_are_built_checked_and_exported(built) -> None:
    pipeline, result = built
    assert result.success
    evaluations = check_results(result)
    assert set(evaluations) == {*quality.MART_TIES, "mart_carrier_shares_sum_to_premium", "freshness_check",
                                *(f"{table}_unique_key" for table in MART_TABLES)}
    fresh = [e.asset_check_evaluation_data.asset_key.to_user_string() for e in result.all_events
             if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
             and e.asset_check_evaluation_data.check_name == "freshness_check"]
    assert sorted(fresh) == sorted(MART_TABLES), "every mart's freshness is checked when it is built"
    assert all(evaluations.values()), evaluations
    for table in MART_TABLES:
        [(rows,)] = pipeline.query(f"SELECT count(*) FROM {table}")
        assert rows > 0, table
        parquet = pipeline.db_path.parent / "marts" / f"{table}.parquet"
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchall() == [(rows,)]
    # every column is documented in the warehouse itself
    undocumented = pipeline.query(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name LIKE 'mart\\_%' ESCAPE '\\' "
        "AND (comment IS NULL OR comment = '')")
    assert undocumented == []


def test_marts_agree_with_the_sandbox_book(built) -> None:
    agrees_with_the_book(built[0])


def test_statuses_in_display_form_are_the_same_statuses_in_the_marts(pipeline, tmp_path) -> None:
    """The platform also renders a status in its display form ("Firm Order" for ``FirmOrder``). Revisions
    seen before keep the form they came in, rows re-rendered and new revisions come in the other: one
    warehouse holds both, and every mart still counts, dates and ages each placement by its one status."""
    pipeline.start_from("synced")
    pipeline.server.set_faults(status_display=True)
    pipeline.server.advance(ticks=3, changed_fraction=0.3, new_roots=0)
    pipeline.sync_all()
    assert pipeline.query("SELECT count(*) FROM risk_history WHERE status = 'FirmOrder'")[0][0] > 0
    assert pipeline.query("SELECT count(*) FROM risk_history WHERE status = 'Firm Order'")[0][0] > 0
    pipeline.mi()
    assert pipeline.query("SELECT count(*) FROM mi_report WHERE status LIKE '% %'")[0][0] > 0
    # Two cases the sandbox's book does not make, built from its rows in a copy. Any edit makes a revision
    # on the platform, so a placement can have several revisions in one status, each in either form: every
    # current revision gets one ten days earlier in the display form. And a placement whose firm order
    # instance (::FO) the warehouse does not hold (a carrier sees its own copy) is dated by its revisions.
    edited, canonical = tmp_path / "edited.duckdb", tmp_path / "canonical.duckdb"
    shutil.copy(pipeline.db_path, edited)
    with db.session(edited) as conn:
        conn.execute(r"""INSERT INTO risk_history (risk_id, rev, root_id, rev_generation, status, umr, valid_from,
                                                   valid_to, first_seen_at)
                         SELECT risk_id, rev || '-edit', root_id, rev_generation,
                                regexp_replace(ws_status(status), '([a-z])([A-Z])', '\1 \2', 'g'),
                                umr, valid_from - INTERVAL 10 DAY, valid_from, first_seen_at
                         FROM risk_history WHERE valid_to IS NULL AND valid_from IS NOT NULL""")
        gone = "SELECT risk_id FROM risks WHERE suffix(risk_id, '::FO')"
        for table in ("risk_channels", "risk_visibility", "risks"):
            conn.execute(f"DELETE FROM {table} WHERE risk_id IN ({gone})")  # noqa: S608
    # The same warehouse with every status in its one form: the marts must come out the same.
    shutil.copy(edited, canonical)
    as_of = dt.datetime.now(dt.UTC)
    with db.session(canonical) as conn:
        for table in ("risks", "risk_history", "mi_report"):
            conn.execute(f"UPDATE {table} SET status = ws_status(status)")  # noqa: S608
        want = marts_as_of(conn, as_of)
    with db.session(edited) as conn:
        got = marts_as_of(conn, as_of)
    for table in MART_TABLES:
        assert got[table] == want[table], table
    result = pipeline.marts()
    assert result.success and all(check_results(result).values()), check_results(result)
    agrees_with_the_book(pipeline)
    for table, column in (("mart_status_monthly", "status"), ("mart_placements", "status"),
                          ("mart_open_items", "status"), ("mart_carrier_shares", "status"),
                          ("mart_placing_times", "status")):
        assert pipeline.query(f"SELECT DISTINCT {column} FROM {table} WHERE {column} LIKE '% %'") == [], table


def marts_as_of(conn: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> dict[str, list[tuple]]:
    """Every mart as built now over ``conn``'s base tables, its rows sorted."""
    marts.build(conn, as_of=as_of)
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in MART_TABLES}


def agrees_with_the_book(pipeline) -> None:
    """The marts of GAILBKR are what the sandbox knows of its own book."""
    world = pipeline.server.sandbox.world
    roots = [world.root(i) for i in world.root_indexes("GAILBKR")]

    # status: this month's placements per status are the roots' current statuses
    got = dict(pipeline.query(
        "SELECT status, sum(placements) FROM mart_status_monthly WHERE company_id = 'GAILBKR' "
        "AND month = (SELECT max(month) FROM mart_status_monthly) GROUP BY 1"))
    want: dict[str, int] = {}
    for r in roots:
        want[r.status] = want.get(r.status, 0) + 1
    assert got == want

    # funnel: milestones are the sandbox's own timeline
    rows = {r[0]: r[1:] for r in pipeline.query(
        "SELECT root_id, requested_at, firm_order_at, signed_at, days_to_firm_order FROM mart_placements "
        "WHERE company_id = 'GAILBKR'")}
    assert set(rows) == {r.root_id for r in roots}
    to_firm_order = []
    for r in roots:
        requested, firm_order, signed, _days = rows[r.root_id]
        fo = r.entered("FirmOrder", "Signed", prefix="Endorsement")
        assert firm_order == (naive(fo).replace(microsecond=0) if fo else None), r.root_id
        assert signed == (naive(r.signed_at()).replace(microsecond=0) if r.signed_at() else None), r.root_id
        if requested is not None and fo is not None:
            to_firm_order.append((naive(fo) - naive(r.created_at)).total_seconds() / 86400)
    [(median,)] = pipeline.query(
        "SELECT median(days_to_firm_order) FROM mart_placements WHERE company_id = 'GAILBKR'")
    assert median == pytest.approx(statistics.median(to_firm_order), abs=1e-3)
    [(requests, firm_orders)] = pipeline.query(
        "SELECT sum(quotation_requests), sum(firm_orders) FROM mart_placing_funnel WHERE company_id = 'GAILBKR'")
    went = [r for r in roots if any(s not in ("NotFinalised", "MarketedOnly") for s in r.path[: r.stage + 1])]
    assert requests == len(went)
    assert firm_orders == sum(1 for r in went if r.entered("FirmOrder", "Signed", prefix="Endorsement"))

    # carrier participation: written and signed shares are the sandbox's exact decimals
    got_shares = {c: (w, s) for c, w, s in pipeline.query(
        "SELECT carrier_company_id, sum(written_pct_total), sum(signed_pct_total) FROM mart_carrier_participation "
        "WHERE company_id = 'GAILBKR' GROUP BY 1")}
    want_shares: dict[str, list[Decimal]] = {}
    for r in roots:
        for carrier, written, signed in shares(r):
            w = want_shares.setdefault(carrier, [Decimal(0), Decimal(0)])
            w[0] += written
            w[1] += signed if r.is_signed() else 0
    assert {c: (w, s or Decimal(0)) for c, (w, s) in got_shares.items()} == {c: tuple(v) for c, v in want_shares.items()}

    # placement type: the MI marts group by the MI report's contractType, not the risk list's
    got_types = dict(pipeline.query(
        "SELECT contract_type, sum(placements) FROM mart_book_premium WHERE company_id = 'GAILBKR' GROUP BY 1"))
    assert got_types == Counter(mi_contract_type(r) for r in roots)

    # open items: quotation or firm-order roots that have been so for more than 30 days
    [(as_of,)] = pipeline.query("SELECT max(as_of) FROM mart_open_items")
    open_items = {r[0] for r in pipeline.query("SELECT root_id FROM mart_open_items WHERE company_id = 'GAILBKR'")}
    assert open_items == {r.root_id for r in roots
                          if r.status in OPEN and (as_of - naive(r.updated_at)).total_seconds() > 30 * 86400}


def test_status_over_time_follows_the_revisions(pipeline) -> None:
    """Month-end counts come from the revisions syncs saw: a placement that moved on after the end of
    a month still counts in its old status in that month."""
    pipeline.start_from("synced")
    before = pipeline.server.sandbox.world
    pipeline.server.advance(ticks=45, changed_fraction=0.01, new_roots=0)
    after = pipeline.server.sandbox.world
    pipeline.sync(GAILBKR_MU)
    pipeline.marts()
    first = before.now.date().replace(day=1)
    month_end = dt.datetime.combine((first + dt.timedelta(days=32)).replace(day=1), dt.time())
    indexes = list(after.root_indexes("GAILBKR"))
    moved = [i for i in indexes if before.root(i).status != after.root(i).status
             and naive(after.root(i).updated_at) >= month_end]
    assert moved, "the sandbox moved some placements on after the month end"

    def counts(month) -> dict[str, int]:
        return dict(pipeline.query("SELECT status, sum(placements) FROM mart_status_monthly "
                                   "WHERE company_id = 'GAILBKR' AND month = ? GROUP BY 1", [month]))

    then: dict[str, int] = {}
    now: dict[str, int] = {}
    for i in indexes:
        b, a = before.root(i), after.root(i)
        status = a.status if naive(a.updated_at) < month_end else b.status
        then[status] = then.get(status, 0) + 1
        now[a.status] = now.get(a.status, 0) + 1
    assert counts(first) == then
    [(latest,)] = pipeline.query("SELECT max(month) FROM mart_status_monthly")
    assert counts(latest) == now
    assert then != now


def test_marts_rebuild_in_one_transaction(built, monkeypatch) -> None:
    """A failure half way through leaves the previous marts whole."""
    pipeline, _ = built
    before = {t: pipeline.query(f"SELECT count(*) FROM {t}")[0][0] for t in MART_TABLES}
    monkeypatch.setitem(marts.BUILD, "mart_open_items", "SELECT no_such_column FROM risks")
    with db.session(pipeline.db_path) as conn, pytest.raises(duckdb.Error):
        marts.build(conn)
    assert {t: pipeline.query(f"SELECT count(*) FROM {t}")[0][0] for t in MART_TABLES} == before


def test_a_broken_mart_fails_its_check(built) -> None:
    """The tie-back checks can fail: a mart that lost rows no longer agrees with the base tables."""
    pipeline, _ = built
    with db.session(pipeline.db_path) as conn:
        conn.execute("DELETE FROM mart_placements WHERE root_id IN (SELECT root_id FROM mart_placements LIMIT 3)")
        conn.execute("UPDATE mart_carrier_participation SET written_pct_total = written_pct_total + 1")
        assert not quality.mart_ties_back(conn, "mart_placements_ties_back", 30).passed
        assert not quality.mart_ties_back(conn, "mart_carrier_participation_ties_back", 30).passed
        assert quality.mart_ties_back(conn, "mart_open_items_ties_back", 30).passed


def test_an_organisation_with_no_signed_placement_ties_back(built) -> None:
    """A carrier none of whose placements is signed yet (a new one, a small one) has a funnel row with
    0 signed, and no signed root in the base tables: the tie-back agrees (it failed the marts run)."""
    pipeline, _ = built
    with db.session(pipeline.db_path) as conn:
        conn.execute(quality.BASE_ROOT_ORGS)
        roots = "SELECT root_id FROM base_root_orgs WHERE company_id = 'MCNEILLIEUWR'"
        conn.execute(f"DELETE FROM market_lines WHERE set_type = 'signed' AND root_id IN ({roots})")
        conn.execute(f"UPDATE risk_history SET status = 'QuotedByUnderwriter' WHERE root_id IN ({roots})")
        conn.execute(f"UPDATE risks SET status = 'QuotedByUnderwriter' WHERE root_id IN ({roots})")
        marts.build(conn)
        assert conn.execute("SELECT sum(signed) FROM mart_placing_funnel WHERE company_id = 'MCNEILLIEUWR'"
                            ).fetchone() == (0,)
        outcome = quality.mart_ties_back(conn, "mart_placing_funnel_ties_back", 30)
        assert outcome.passed, outcome.metadata["differences"]


def test_open_item_days_is_configurable(built) -> None:
    pipeline, _ = built
    [(default,)] = pipeline.query("SELECT count(*) FROM mart_open_items")
    result = pipeline.marts({"ops": {"marts": {"config": {"open_item_days": 100_000}}}})
    assert result.success and all(check_results(result).values())
    assert pipeline.query("SELECT count(*) FROM mart_open_items") == [(0,)]
    assert default > 0


def test_every_mart_has_a_key_check_that_can_fail(built) -> None:
    """The marts had no key check: one carrier company under two names gave mart_premium_monthly two rows
    with one key in DuckDB without a word (and PostgreSQL refused the build)."""
    pipeline, _ = built
    from models import marts as marts_models
    from pipelines.defs import checks

    by_name = {c.name: c for c in checks.MARTS}
    with duckdb.connect(str(pipeline.db_path)) as conn:
        for mart in marts_models.MARTS:
            check = by_name[f"{mart.name}_unique_key"]
            assert check.rule(conn).passed, mart.name
            conn.execute(f"INSERT INTO {mart.name} SELECT * FROM {mart.name} LIMIT 1")  # one key twice
            outcome = check.rule(conn)
            assert not outcome.passed and outcome.metadata["duplicate_keys"] == 1, mart.name


def test_a_carrier_under_two_names_is_one_row_of_its_key(built) -> None:
    pipeline, _ = built
    with duckdb.connect(str(pipeline.db_path)) as conn:
        [(company,)] = conn.execute("SELECT carrier_company_id FROM mi_report_carriers WHERE carrier IS NOT NULL "
                                    "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()
        conn.execute("UPDATE mi_report_carriers SET carrier = carrier || ' (renamed)' "
                     "WHERE carrier_company_id = ? AND root_id IN (SELECT root_id FROM mi_report_carriers "
                     "WHERE carrier_company_id = ? ORDER BY root_id LIMIT 5)", [company, company])
        conn.execute("DELETE FROM marts_state")  # built from other loads: rebuild
    result = pipeline.marts()
    assert result.success and check_results(result)["mart_premium_monthly_unique_key"]
    assert check_results(result)["mart_premium_monthly_ties_back"]
