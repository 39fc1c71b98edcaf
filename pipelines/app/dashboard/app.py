"""The book-of-business dashboard: a Streamlit app over the marts. Run it with ``whitespace-etl dashboard``."""

import datetime as dt
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from pipelines import config
from pipelines.app.dashboard import data

STAGES = ("Quotation requests", "Firm orders", "Signed")

st.set_page_config(page_title="Whitespace book of business", layout="wide")


# How long a page shows the same read of the marts before it reads them again (0: every load).
# (A comment, not a docstring: Streamlit would print a bare string on the page.)
CACHE_SECONDS = config.dashboard_cache_seconds()


@st.cache_data(ttl=max(CACHE_SECONDS, 0.001), show_spinner="Reading the marts…")
def _cached(db_path: str, marts_dir: str, url: str) -> data.Snapshot:
    return data.load(Path(db_path), Path(marts_dir), url)


def snapshot(db_path: str, marts_dir: str, url: str = "") -> data.Snapshot:
    if CACHE_SECONDS <= 0:
        return data.load(Path(db_path), Path(marts_dir), url)
    return _cached(db_path, marts_dir, url)


def month_range(frames: list[pd.Series]) -> tuple[dt.date, dt.date]:
    months = pd.concat([f.dropna() for f in frames])
    if months.empty:
        today = dt.date.today().replace(day=1)
        return today, today
    return pd.Timestamp(months.min()).date(), pd.Timestamp(months.max()).date()


def in_period(frame: pd.DataFrame, column: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    when = pd.to_datetime(frame[column])
    return frame[(when >= pd.Timestamp(start)) & (when <= pd.Timestamp(end))]


def header(warehouse, title: str) -> data.Snapshot:
    st.title(title)
    try:
        snap = snapshot(str(warehouse.path), str(warehouse.marts_dir), warehouse.url)
    except data.NoMarts as exc:
        st.error(str(exc))
        st.stop()
    source = {"warehouse": "warehouse (read-only)", "postgresql": "PostgreSQL warehouse"}.get(
        snap.source, "Parquet export of the marts")
    st.caption(f"Data as of {snap.as_of:%Y-%m-%d %H:%M} UTC · read from the {source}" if snap.as_of else source)
    if snap.note:
        st.info(snap.note)
    return snap


def filtered(snap: data.Snapshot, default_days: int) -> tuple[dict[str, pd.DataFrame], int]:
    """The sidebar's filters, and each mart cut to the chosen organisations and period."""
    status, funnel, placements = snap["mart_status_monthly"], snap["mart_placing_funnel"], snap["mart_placements"]
    carriers, open_items = snap["mart_carrier_participation"], snap["mart_open_items"]
    with st.sidebar:
        st.header("Filters")
        organisations = sorted(placements["organisation"].dropna().unique())
        chosen = st.multiselect("Organisation", organisations, default=organisations,
                                help="A placement shared with several of your organisations counts once in each.")
        first, last = month_range([status["month"], funnel["month"], carriers["inception_month"]])
        start, end = st.slider("Period (month)", min_value=first, max_value=last, value=(first, last),
                               format="MMM YYYY")
        older = st.number_input("Open items older than (days)", min_value=0, value=default_days, step=15,
                                help="The mart keeps items older than WHITESPACE_OPEN_ITEM_DAYS (30) at build time.")

    def of_orgs(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["organisation"].isin(chosen)]

    open_f = of_orgs(open_items)
    return {
        "status": in_period(of_orgs(status), "month", start, end),
        "funnel": in_period(of_orgs(funnel), "month", start, end),
        "placements": of_orgs(placements),
        "placed": in_period(of_orgs(placements).dropna(subset=["requested_at"]), "requested_at", start,
                            pd.Timestamp(end) + pd.offsets.MonthEnd(1)),
        "carriers": in_period(of_orgs(carriers).dropna(subset=["inception_month"]), "inception_month", start, end),
        "open": open_f[open_f["days_in_status"] > older],
    }, older


def key_figures(f: dict[str, pd.DataFrame]) -> None:
    kpi = st.columns(5)
    kpi[0].metric("Placements", f"{len(f['placements']):,}", help="All placements of the chosen organisations")
    kpi[1].metric("Quotation requests", f"{int(f['funnel']['quotation_requests'].sum()):,}")
    kpi[2].metric("Firm orders", f"{int(f['funnel']['firm_orders'].sum()):,}")
    kpi[3].metric("Signed", f"{int(f['funnel']['signed'].sum()):,}")
    kpi[4].metric("Open items", f"{len(f['open']):,}")


def status_over_time(status_f: pd.DataFrame) -> None:
    st.subheader("Placements by status over time")
    by_status = status_f.groupby(["month", "status"], as_index=False)["placements"].sum()
    st.altair_chart(
        alt.Chart(by_status).mark_bar().encode(
            x=alt.X("yearmonth(month):T", title="Month end"),
            y=alt.Y("placements:Q", title="Placements"),
            color=alt.Color("status:N", title="Status"),
            tooltip=["month:T", "status:N", "placements:Q"],
        ).properties(height=320),
        width="stretch",
    )


def placing_funnel(funnel_f: pd.DataFrame, placed_f: pd.DataFrame) -> None:
    st.subheader("Placing funnel")
    totals = pd.DataFrame({"stage": STAGES, "placements": [int(funnel_f["quotation_requests"].sum()),
                                                            int(funnel_f["firm_orders"].sum()),
                                                            int(funnel_f["signed"].sum())]})
    st.altair_chart(
        alt.Chart(totals).mark_bar().encode(
            y=alt.Y("stage:N", sort=list(STAGES), title=None),
            x=alt.X("placements:Q", title="Placements requested in the period"),
            tooltip=["stage:N", "placements:Q"],
        ).properties(height=180),
        width="stretch",
    )
    medians = pd.DataFrame({
        "step": ["Request → firm order", "Firm order → signed", "Request → signed"],
        "median days": [placed_f["days_to_firm_order"].median(), placed_f["days_firm_order_to_signed"].median(),
                        placed_f["days_to_signed"].median()],
        "placements": [placed_f["days_to_firm_order"].count(), placed_f["days_firm_order_to_signed"].count(),
                       placed_f["days_to_signed"].count()],
    })
    st.dataframe(medians.round(1), hide_index=True)


def carrier_participation(carriers_f: pd.DataFrame) -> None:
    st.subheader("Carrier participation")
    per = carriers_f.groupby("carrier", as_index=False)[
        ["placements", "signed_placements", "written_pct_total", "signed_pct_total"]].sum()
    # Lines are shares of different placements: their average is meaningful, their sum is not.
    per["written"] = per["written_pct_total"].astype(float) / per["placements"].where(per["placements"] > 0)
    per["signed"] = per["signed_pct_total"].astype(float) / per["signed_placements"].where(per["signed_placements"] > 0)
    long = per.melt(["carrier", "placements"], value_vars=["written", "signed"], var_name="line", value_name="pct")
    st.altair_chart(
        alt.Chart(long.dropna(subset=["pct"])).mark_bar().encode(
            y=alt.Y("carrier:N", title=None, axis=alt.Axis(labelLimit=220)),
            yOffset="line:N",
            x=alt.X("pct:Q", title="Average line (% of the placement)"),
            color=alt.Color("line:N", title="Line"),
            tooltip=["carrier:N", "line:N", alt.Tooltip("pct:Q", format=",.2f", title="average %"),
                     "placements:Q"],
        ).properties(height=260),
        width="stretch",
    )
    by_lead = carriers_f.fillna({"lead_company_id": "(no lead yet)"}).groupby(
        ["lead_company_id", "carrier"], as_index=False)[["placements", "lead_lines"]].sum()
    by_lead = by_lead.rename(columns={"lead_company_id": "lead", "lead_lines": "as lead"})
    st.dataframe(by_lead, hide_index=True)


def open_items(open_f: pd.DataFrame, older: int) -> None:
    st.subheader(f"Open items: quotation or firm order for more than {older} days")
    st.dataframe(
        open_f.sort_values("days_in_status", ascending=False)[
            ["organisation", "umr", "insured_name", "contract_type", "status", "status_since", "days_in_status"]
        ].round({"days_in_status": 0}),
        hide_index=True,
    )


def book() -> None:
    warehouse = config.warehouse()
    snap = header(warehouse, "Whitespace book of business")
    f, older = filtered(snap, warehouse.open_item_days)
    key_figures(f)
    status_over_time(f["status"])
    left, right = st.columns(2)
    with left:
        placing_funnel(f["funnel"], f["placed"])
    with right:
        carrier_participation(f["carriers"])
    open_items(f["open"], older)


def amount(currency: str, value) -> str:
    return f"{currency} {float(value or 0):,.0f}"


def money() -> None:
    """Premium and brokerage, one currency at a time: amounts are never added across currencies."""
    warehouse = config.warehouse()
    snap = header(warehouse, "Premium and brokerage")
    book_p, carriers_p = snap["mart_book_premium"], snap["mart_premium_monthly"]
    totals = book_p.groupby("currency")["premium"].sum().sort_values(ascending=False)
    if totals.empty:
        st.info("No MI report rows yet: run a sync.")
        return
    with st.sidebar:
        st.header("Filters")
        currency = st.selectbox("Currency", list(totals.index), index=0,
                                help="Every figure on this page is in this currency; other currencies are not converted.")
        organisations = sorted(book_p["organisation"].dropna().unique())
        chosen = st.multiselect("Organisation", organisations, default=organisations,
                                help="A placement shared with several of your organisations counts once in each.")
    b = book_p[(book_p["currency"] == currency) & book_p["organisation"].isin(chosen)]
    c = carriers_p[(carriers_p["currency"] == currency) & carriers_p["organisation"].isin(chosen)]
    top, bottom = st.columns(2), st.columns(2)  # amounts in full need the width
    top[0].metric("Gross premium (100%)", amount(currency, b["premium"].sum()))
    top[1].metric("Brokerage", amount(currency, b["brokerage"].sum()))
    bottom[0].metric("Bound premium", amount(currency, b["bound_premium"].sum()))
    bottom[1].metric("Placements", f"{int(b['placements'].sum()):,}")
    unparsed = int(b["unparsed_premiums"].sum())
    if unparsed:
        st.warning(f"{unparsed} placements' premium could not be read as an amount and is not in these figures "
                   "(see mi_report.premium_raw).")
    st.subheader(f"Premium and brokerage by month of inception ({currency})")
    monthly = b.dropna(subset=["month"]).groupby("month", as_index=False)[["premium", "brokerage"]].sum()
    long = monthly.melt("month", var_name="measure", value_name="amount")
    long["amount"] = long["amount"].astype(float)
    st.altair_chart(
        alt.Chart(long).mark_bar().encode(
            x=alt.X("yearmonth(month):T", title="Month of inception"),
            xOffset="measure:N",
            y=alt.Y("amount:Q", title=currency),
            color=alt.Color("measure:N", title=None),
            tooltip=["month:T", "measure:N", alt.Tooltip("amount:Q", format=",.2f")],
        ).properties(height=300),
        width="stretch",
    )
    left, right = st.columns(2)
    with left:
        ranked(f"Signed premium by carrier ({currency})", c, "carrier", "signed_premium",
               f"Premium × signed line ({currency})")
    with right:
        ranked(f"Premium by placement type ({currency})", b, "contract_type", "premium", currency)


def ranked(title: str, frame: pd.DataFrame, category: str, amount_column: str, axis_title: str) -> None:
    """A subheader and horizontal bars: ``amount_column`` summed per ``category``, largest first."""
    st.subheader(title)
    per = frame.groupby(category, as_index=False)[amount_column].sum()
    per[amount_column] = per[amount_column].astype(float)
    st.altair_chart(
        alt.Chart(per).mark_bar().encode(
            x=alt.X(f"{amount_column}:Q", title=axis_title),
            y=alt.Y(f"{category}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            tooltip=[f"{category}:N", alt.Tooltip(f"{amount_column}:Q", format=",.2f")],
        ).properties(height=220),
        width="stretch",
    )


st.navigation([st.Page(book, title="Book of business", default=True),
               st.Page(money, title="Premium and brokerage", url_path="money")]).run()
