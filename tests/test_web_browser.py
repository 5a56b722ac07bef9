"""The dashboard page in headless Chromium (Debian's, driven by Playwright), served by
`stratus-sql serve` over a private PostgreSQL cluster that the test stops at the end."""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

import stratus_sql
from stratus_sql import Database
from stratus_sql.queries import metrics
from stratus_sql.records import MetricBucket
from stratus_sql.web.summary import SUMMARY_ROWS
from tests.servers import Cluster
from tests.webapp import person, served

CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest keeps it off the network it has no use for.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHARTS = {
    "chart-ia_efficiency": "ia_efficiency",
    "chart-model_accuracy": "model_accuracy",
    "chart-processing_time": "processing_time_ms",
    "chart-memory_usage_mb": "memory_usage_mb",
    "chart-error_rate": "error_rate",
}
SUMMARY_FIELDS = tuple(row.field for row in SUMMARY_ROWS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no {CHROMIUM}: `make install` installs Debian's chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def watch(page: Page) -> list[str]:
    """Every console message and uncaught error of the page, as it happens."""
    seen: list[str] = []

    def message(msg: ConsoleMessage) -> None:
        seen.append(f"{msg.type}: {msg.text}")

    page.on("console", message)
    page.on("pageerror", lambda exc: seen.append(f"error: {exc}"))
    return seen


async def drawn_points(page: Page) -> dict[str, int]:
    points = {}
    for chart in CHARTS:
        container = page.locator(f"#{chart}")
        assert await container.locator("canvas").count() >= 1, chart
        points[chart] = int(await container.get_attribute("data-points") or "-1")
    return points


async def summary(page: Page) -> dict[tuple[str, str], float]:
    cells = page.locator("#summary td[data-field]")
    found = {}
    for i in range(await cells.count()):
        cell = cells.nth(i)
        value = await cell.get_attribute("data-value")
        if value:
            found[
                (
                    await cell.get_attribute("data-field") or "",
                    await cell.get_attribute("data-stat") or "",
                )
            ] = float(value)
    return found


def expected_summary(buckets: list[MetricBucket]) -> dict[tuple[str, str], float]:
    expected = {}
    for field in SUMMARY_FIELDS:
        values = [getattr(b, field) for b in buckets if getattr(b, field) is not None]
        if values:
            expected[(field, "min")] = min(values)
            expected[(field, "mean")] = math.fsum(values) / len(values)
            expected[(field, "max")] = max(values)
    return expected


async def check_page(page: Page, db: Database, board_id: UUID, period: str) -> None:
    """The charts and the summary show what dashboard_series computes for the period."""
    buckets = await metrics.dashboard_series(db, period=period, dashboard_id=board_id)
    for chart, field in CHARTS.items():
        present = sum(1 for b in buckets if getattr(b, field) is not None)
        assert (await drawn_points(page))[chart] == present, (period, chart)
    shown = await summary(page)
    want = expected_summary(buckets)
    assert shown.keys() == want.keys()
    for key, value in want.items():
        assert shown[key] == pytest.approx(value, rel=1e-9), key


async def test_the_dashboard_page_in_a_real_browser(
    stoppable_cluster: Cluster, browser: Browser, tmp_path: Path
) -> None:
    async with await stratus_sql.connect(stoppable_cluster.url) as db:
        pilot = await person(db, samples=300)
        board = pilot.board.dashboard_id
        with served(stoppable_cluster.url) as base:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            messages = watch(page)
            await page.goto(f"{base}/dashboards/{board}")
            assert page.url == f"{base}/sign-in"  # not signed in yet
            await page.fill("#key", pilot.key)
            await page.click("#sign-in")
            await page.wait_for_url(f"{base}/dashboards")
            await page.click(f"a[href='/dashboards/{board}']")
            await page.wait_for_url(f"{base}/dashboards/{board}")
            await check_page(page, db, board, "24h")
            assert await page.locator("#stale").is_hidden()
            assert await page.locator("h1").inner_text() == pilot.board.name

            for label, period in (("7 dias", "7d"), ("30 dias", "30d"), ("24 h", "24h")):
                await page.click(f"#periods >> text={label}")
                await page.wait_for_url(f"{base}/dashboards/{board}?period={period}")
                assert await page.locator("#periods [aria-current=page]").inner_text() == label
                await check_page(page, db, board, period)
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert (tmp_path / "dashboard.png").stat().st_size > 10_000

            csv_link = page.locator("#csv")
            assert await csv_link.get_attribute("href") == (
                f"/api/dashboards/{board}/series.csv?period=24h"
            )
            async with page.expect_download() as download:
                await csv_link.click()
            saved = tmp_path / "series.csv"
            await (await download.value).save_as(saved)
            assert len(saved.read_text().splitlines()) == 25

            await asyncio.to_thread(stoppable_cluster.pg_ctl, "stop", "-m", "fast")
            try:
                await page.reload()
                banner = page.locator("#stale")
                assert await banner.is_visible()
                text = await banner.inner_text()
                assert text.startswith("Dados de ")
                assert text.endswith(", banco de dados indisponível")
                await check_page_offline(page)
                await page.screenshot(path=str(tmp_path / "stale.png"))
            finally:
                await asyncio.to_thread(stoppable_cluster.pg_ctl, "start")
            await context.close()
    assert messages == []


async def check_page_offline(page: Page) -> None:
    """With the database stopped, the charts still draw the last good series."""
    points = await drawn_points(page)
    assert points["chart-ia_efficiency"] > 0
