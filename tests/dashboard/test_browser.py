"""The dashboard in a real browser: ``whitespace-etl dashboard`` started as a user starts it, loaded
in headless Chromium (Debian's package, installed by tests/install-browser.sh), charts checked
against the warehouse, and a screenshot kept in build/test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.dashboard.conftest import wait_for, writer_holding

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("WHITESPACE_TEST_ARTIFACTS") or ROOT / "build" / "test-artifacts")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHARTS = '[data-testid="stVegaLiteChart"]'


def chromium() -> str:
    path = os.environ.get("WHITESPACE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is not installed: run 'sh tests/install-browser.sh' (Debian's chromium package), "
                    "or set WHITESPACE_CHROMIUM to a Chromium binary.")
    return path


@pytest.fixture
def dashboard(synced, tmp_path):
    port = free_port()
    env = {**os.environ, "WHITESPACE_WAREHOUSE": str(synced.db_path), "WHITESPACE_DASHBOARD_CACHE_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.app.cli", "dashboard", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"

    def healthy() -> bool:
        try:
            return httpx.get(url + "_stcore/health", timeout=2).text == "ok"
        except httpx.HTTPError:
            return proc.poll() is not None
    try:
        wait_for(healthy, 60, "the dashboard to start")
        assert proc.poll() is None, proc.stdout.read()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        yield page
        browser.close()


def rendered_charts(page) -> int:
    """Charts whose Vega view drew something (a canvas or svg with a size)."""
    return page.evaluate(
        """sel => [...document.querySelectorAll(sel)].filter(c => [...c.querySelectorAll('canvas, svg')]
              .some(e => e.getBoundingClientRect().width > 100 && e.getBoundingClientRect().height > 50)).length""",
        CHARTS)


def load(page, url: str) -> str:
    page.goto(url)
    page.wait_for_selector(CHARTS, timeout=60_000)
    page.wait_for_function(f"document.querySelectorAll('{CHARTS}').length >= 3", timeout=60_000)
    wait_for(lambda: rendered_charts(page) >= 3, 60, "three charts to draw")
    page.wait_for_timeout(500)
    assert page.query_selector('[data-testid="stException"]') is None, page.inner_text("body")
    return page.inner_text("body")


def metric(text: str, label: str) -> int:
    match = re.search(rf"{label}\s*\n+\s*([\d,]+)", text)
    assert match, f"no {label} figure on the page"
    return int(match.group(1).replace(",", ""))


def test_dashboard_shows_the_marts(dashboard, page, synced) -> None:
    text = load(page, dashboard)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    assert "read from the warehouse (read-only)" in text
    main = page.inner_text('[data-testid="stMain"]').strip()
    assert main.startswith("Whitespace book of business"), f"something stray above the title: {main[:200]!r}"
    [(placements, requests, firm_orders, signed)] = synced.query(
        "SELECT (SELECT count(*) FROM mart_placements), sum(quotation_requests), sum(firm_orders), sum(signed) "
        "FROM mart_placing_funnel")
    [(open_items,)] = synced.query("SELECT count(*) FROM mart_open_items")
    assert metric(text, "Placements") == placements
    assert metric(text, "Quotation requests") == requests
    assert metric(text, "Firm orders") == firm_orders
    assert metric(text, "Signed") == signed
    assert metric(text, "Open items") == open_items > 0
    for heading in ("Placements by status over time", "Placing funnel", "Carrier participation", "Open items"):
        assert heading in text
    for organisation in ("Gail Brokers", "Whitesails", "McNeillie"):
        assert organisation in text


def test_dashboard_keeps_working_while_a_sync_writes(dashboard, page, synced) -> None:
    with writer_holding(synced.db_path):
        text = load(page, dashboard)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-during-sync.png"), full_page=True)
    assert "Parquet export of the marts" in text and "A sync is writing the warehouse" in text
    [(placements,)] = synced.query("SELECT count(*) FROM mart_placements")
    assert metric(text, "Placements") == placements


def test_money_page_shows_premium_per_currency(dashboard, page, synced) -> None:
    text = load(page, dashboard + "money")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-money.png"), full_page=True)
    [(currency, premium, brokerage, bound, placements)] = synced.query(
        """SELECT currency, sum(premium), sum(brokerage), sum(bound_premium), sum(placements) FROM mart_book_premium
           GROUP BY currency ORDER BY sum(premium) DESC LIMIT 1""")

    def shown(label: str) -> int:
        match = re.search(rf"{re.escape(label)}\s*\n+\s*{currency} ([\d,]+)", text)
        assert match, f"no {label} figure in {currency} on the page"
        return int(match.group(1).replace(",", ""))

    assert shown("Gross premium (100%)") == round(premium)
    assert shown("Brokerage") == round(brokerage)
    assert shown("Bound premium") == round(bound)
    assert metric(text, "Placements") == placements
    for heading in ("Premium and brokerage by month of inception", "Signed premium by carrier", "Premium by placement type"):
        assert f"{heading} ({currency})" in text
