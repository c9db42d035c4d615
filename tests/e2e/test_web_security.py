"""In the browser: strings from the exchange or the database render as text, never as markup, and the
page loads nothing from another host."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import BrowserContext, expect
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.db.session import Caller, Database
from tests.e2e.conftest import PageWatch, WebStack, screenshot_path

MARKUP = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


async def insert_signal(db: Database, **row: object) -> str:
    values = {k: Jsonb(v) if k == "components" else v for k, v in row.items()}
    query = sql.SQL("insert into signals ({}) values ({}) returning id").format(
        sql.SQL(", ").join(map(sql.Identifier, values)), sql.SQL(", ").join(sql.Placeholder() * len(values))
    )
    async with db.write(Caller.service()) as conn:
        returned = await (await conn.execute(query, list(values.values()))).fetchone()
    assert returned is not None
    return str(returned["id"])


async def test_markup_in_a_signal_renders_as_text(
    context: BrowserContext, web_stack: WebStack, db: Database
) -> None:
    bar = datetime(2024, 1, 15, tzinfo=UTC) - timedelta(minutes=5 * (uuid.uuid4().int % 10_000))
    symbol = f"X{MARKUP}"
    signal_id = await insert_signal(
        db,
        symbol=symbol,
        category="linear",
        timeframe="5",
        direction="LONG",
        algorithm="unirail_core",
        score=99.99,
        confidence=0.5,
        entry_price=100,
        stop_loss=95,
        take_profit=110,
        atr=2,
        components={MARKUP: 50, "trend": 49.99},
        bar_time=bar,
        expires_at=bar + timedelta(hours=1),
        # Not work for any executor: only the board shows it.
        status="expired",
    )
    page = await context.new_page()
    watch = PageWatch(page, web_stack.api_url)

    await page.goto(f"{web_stack.api_url}/#/signals")
    await page.select_option("#filter-timeframe", "5")
    await page.fill("#filter-min_score", "99.99")
    await page.dispatch_event("#signal-filters", "change")
    row = page.locator(f'[data-signal-id="{signal_id}"]')
    await expect(row).to_be_visible(timeout=15_000)
    await row.click()

    await expect(page.locator("#signal-symbol")).to_have_text(symbol)
    cells = page.locator("#signal-components tbody td")
    await expect(cells.filter(has_text="<img src=x")).to_have_text(MARKUP)
    await expect(row.locator(".sym")).to_have_text(symbol)
    assert await page.locator("#page img").count() == 0
    assert await page.locator("#page script").count() == 0
    assert await page.evaluate("window.__xss") is None
    await page.screenshot(path=screenshot_path("xss-signal-as-text"), full_page=True)
    assert watch.foreign == []


async def test_the_app_is_usable_at_390_px_and_talks_to_no_other_host(
    context: BrowserContext, web_stack: WebStack
) -> None:
    page = await context.new_page()
    await page.set_viewport_size({"width": 390, "height": 844})
    watch = PageWatch(page, web_stack.api_url)

    await page.goto(f"{web_stack.api_url}/#/signals")
    await expect(page.locator("#signals-status")).to_contain_text("signal(s)", timeout=15_000)

    # Nothing wider than the screen: no sideways scrolling of the page itself.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await expect(page.locator("#nav a", has_text="Signals")).to_be_visible()
    await page.screenshot(path=screenshot_path("signals-390px"), full_page=True)
    await page.goto(f"{web_stack.api_url}/#/system")
    await expect(page.locator("#system-status")).to_have_text(
        re.compile("^(healthy|degraded|down)$"), timeout=15_000
    )
    async with httpx.AsyncClient(timeout=30) as client:
        diagnostics = (await client.post(f"{web_stack.api_url}/functions/v1/diagnostics", json={})).json()
    await expect(page.locator("#system-status")).to_have_text(diagnostics["status"])
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=screenshot_path("system-390px"), full_page=True)
    assert watch.foreign == []
    assert [e for e in watch.errors if "Content Security Policy" in e] == []
