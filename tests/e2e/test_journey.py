"""A user's whole journey in the browser, against the real stack and its replay.

Sign up; connect a paper account; set preferences; advance the replay (the paper exchange's clock,
then the stack's scheduler, as ``make demo`` does) until a signal arrives; see it with its score's
components and its chart; then the order it placed, then a position closed by its TP or SL with its
P&L; close another position by hand; sign out. A screenshot of every page is saved under
``test-artifacts/e2e/``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, expect

from lib.db.session import Caller, Database
from lib.paper_exchange.client import AsyncPaperControls
from tests.e2e.conftest import PageWatch, WebStack, screenshot_path

PASSWORD = "a long enough passphrase 7"
PREFERENCES = {
    "algorithms": ["unirail_core", "quantum_ai"],
    "timeframes": ["5", "15"],
    "min_score": "40",
    "risk_per_trade_pct": "1",
    "max_position_usd": "2000",
    "leverage": "3",
    "max_open_positions": "6",
    "daily_loss_limit_pct": "50",
}
# Bounds on the replay, in five-minute candles: none of these loops can run for ever.
MAX_CANDLES_FOR_A_SIGNAL = 72
MAX_CANDLES_FOR_AN_ORDER = 72
MAX_CANDLES_FOR_A_CLOSE = 288
MARKUP = '<img src=x onerror="window.__xss=3"><b>bold</b>'


def signed(value: str | None) -> str:
    """A realized P&L as the page writes it (``format.js`` signed): +1,234.50, -13.76, 0.00."""
    assert value is not None
    number = Decimal(value)
    text = f"{abs(number):,.2f}"
    return f"+{text}" if number > 0 else f"-{text}" if number < 0 else text


async def session_token(page: Page) -> str:
    """The access token the app keeps in sessionStorage (never in a URL)."""
    raw = await page.evaluate("sessionStorage.getItem('aitradex.session')")
    assert raw is not None
    token: str = json.loads(raw)["access_token"]
    return token


async def activity(client: httpx.AsyncClient, stack: WebStack, token: str, action: str) -> dict[str, Any]:
    response = await client.post(
        f"{stack.api_url}/functions/v1/trading-activity",
        json={"action": action},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_signals(client: httpx.AsyncClient, stack: WebStack, since: datetime) -> list[dict[str, Any]]:
    response = await client.post(
        f"{stack.api_url}/functions/v1/signals-api",
        json={"action": "list", "since": since.isoformat(), "min_score": 40, "limit": 200},
    )
    assert response.status_code == 200, response.text
    return [s for s in response.json()["signals"] if s["timeframe"] in PREFERENCES["timeframes"]]


async def sign_up(page: Page, stack: WebStack, email: str) -> None:
    await page.goto(f"{stack.api_url}/#/signup")
    await page.fill("#signup-form input[name=email]", email)
    await page.fill("#signup-form input[name=password]", "short")
    await page.click("#signup-form button[type=submit]")
    # The auth server's own message, inline.
    await expect(page.locator("#auth-error")).to_contain_text("at least", timeout=10_000)
    await page.screenshot(path=screenshot_path("01-signup-error"), full_page=True)
    await page.fill("#signup-form input[name=password]", PASSWORD)
    await page.click("#signup-form button[type=submit]")
    await expect(page).to_have_url(f"{stack.api_url}/#/account", timeout=10_000)
    await expect(page.locator("#who-email")).to_have_text(email)


async def connect_paper_account(page: Page, stack: WebStack) -> str:
    await expect(page.locator("#account-status")).to_contain_text("No exchange account connected yet")
    await page.select_option("#connect-environment", "paper")
    await expect(page.locator("#key-guidance")).to_contain_text("Never enable Withdrawal")
    await page.click("#connect-form button[type=submit]")
    await expect(page.locator('[data-error-for="api_key"]')).to_contain_text("at least", timeout=10_000)
    account = await AsyncPaperControls(stack.paper_url).create_account("10000")
    await page.fill("#connect-api-key", account.api_key)
    await page.fill("#connect-api-secret", account.api_secret)
    await page.click("#connect-form button[type=submit]")
    await expect(page.locator("#connect-ok")).to_contain_text("Connected paper", timeout=20_000)
    row = page.locator('#accounts-table tr[data-environment="paper"]')
    await expect(row).to_contain_text(f"…{account.api_key[-4:]}")
    assert account.api_secret not in await page.content()
    await page.screenshot(path=screenshot_path("02-account"), full_page=True)
    return account.api_key


async def set_preferences(page: Page, stack: WebStack) -> None:
    await page.goto(f"{stack.api_url}/#/preferences")
    await expect(page.locator("#prefs-saved")).to_contain_text("Defaults", timeout=10_000)
    await page.fill("#pref-leverage", "1000")
    await page.click("#prefs-form button[type=submit]")
    await expect(page.locator('[data-error-for="leverage"]')).to_have_text(
        "'leverage' must be at most 100", timeout=10_000
    )
    await page.check("#pref-auto_trade_enabled")
    for group in ("algorithms", "timeframes"):
        for box in await page.locator(f"#pref-{group} input").all():
            value = await box.get_attribute("value")
            await box.set_checked(value in PREFERENCES[group])
    for name in ("min_score", "risk_per_trade_pct", "max_position_usd", "leverage", "max_open_positions"):
        await page.fill(f"#pref-{name}", str(PREFERENCES[name]))
    await page.fill("#pref-daily_loss_limit_pct", str(PREFERENCES["daily_loss_limit_pct"]))
    await page.click("#prefs-form button[type=submit]")
    await expect(page.locator("#prefs-ok")).to_have_text("Preferences saved.", timeout=10_000)
    await expect(page.locator('[data-error-for="leverage"]')).to_have_text("")
    await expect(page.locator("#prefs-saved")).to_contain_text("Saved")
    await page.screenshot(path=screenshot_path("03-preferences"), full_page=True)


async def see_the_signal(page: Page, stack: WebStack, signal: dict[str, Any]) -> None:
    await page.goto(f"{stack.api_url}/#/signals")
    row = page.locator(f'[data-signal-id="{signal["id"]}"]')
    await expect(row).to_be_visible(timeout=15_000)
    await row.click()
    await expect(page.locator("#signal-symbol")).to_have_text(signal["symbol"])
    components = page.locator("#signal-components tbody tr")
    await expect(components).to_have_count(len(signal["components"]))
    for name in signal["components"]:
        await expect(page.locator(f'#signal-components tr[data-component="{name}"]')).to_be_visible()
    evidence = page.locator("#signal-evidence")
    await expect(evidence).to_be_visible()
    assert await evidence.get_attribute("data-edge") in ("shown", "not-shown", "unknown")
    chart = page.locator("#signal-chart svg.candles")
    await expect(chart).to_be_visible(timeout=15_000)
    assert int(await chart.get_attribute("data-marked-index") or "-1") >= 0  # the signal's bar is marked
    for level in ("entry", "sl", "tp"):
        await expect(chart.locator(f'[data-level="{level}"]')).to_have_count(1)
    await expect(page.locator("#signal-rr")).to_contain_text("1 : ")
    await page.screenshot(path=screenshot_path("04-signals"), full_page=True)


async def test_a_user_signs_up_trades_the_replay_and_signs_out(
    context: BrowserContext, web_stack: WebStack, db: Database
) -> None:
    email = f"web-{uuid.uuid4().hex[:10]}@test.local"
    page = await context.new_page()
    watch = PageWatch(page, web_stack.api_url)
    started = datetime.now(UTC)

    # 1-3: sign up, connect a paper account, set preferences.
    await sign_up(page, web_stack, email)
    await connect_paper_account(page, web_stack)
    await set_preferences(page, web_stack)
    token = await session_token(page)

    async with httpx.AsyncClient(timeout=120) as client:
        # 4: advance the replay until a signal arrives.
        signals: list[dict[str, Any]] = []
        for _ in range(MAX_CANDLES_FOR_A_SIGNAL):
            await web_stack.tick(client)
            signals = await new_signals(client, web_stack, started)
            if signals:
                break
        assert signals, f"no signal in {MAX_CANDLES_FOR_A_SIGNAL} candles"

        # 5: the signal with its components and chart.
        await see_the_signal(page, web_stack, signals[0])

        # ... then the order it placed for this user.
        orders: list[dict[str, Any]] = []
        for _ in range(MAX_CANDLES_FOR_AN_ORDER):
            orders = [
                o
                for o in (await activity(client, web_stack, token, "orders"))["orders"]
                if o["filled_qty"] != "0"
            ]
            if orders:
                break
            await web_stack.tick(client)
        assert orders, f"no filled order in {MAX_CANDLES_FOR_AN_ORDER} candles"
        await page.goto(f"{web_stack.api_url}/#/trading")
        first = orders[-1]
        order_row = page.locator(f'#orders-table tr[data-order-id="{first["id"]}"]')
        await expect(order_row).to_be_visible(timeout=15_000)
        await expect(order_row.locator(".order-status")).to_have_text(first["status"])
        await page.screenshot(path=screenshot_path("05-trading-order"), full_page=True)

        # ... then a position closed by its TP or SL, with its P&L, while another one is still open.
        closed: list[dict[str, Any]] = []
        open_positions: list[dict[str, Any]] = []
        for _ in range(MAX_CANDLES_FOR_A_CLOSE):
            await web_stack.tick(client)
            orders = (await activity(client, web_stack, token, "orders"))["orders"]
            closed = [
                o
                for o in orders
                if o["realized_pnl"] is not None and o["exit_reason"] in ("TakeProfit", "StopLoss")
            ]
            open_positions = (await activity(client, web_stack, token, "positions"))["positions"]
            if closed and open_positions:
                break
        assert closed, f"no position closed by TP or SL in {MAX_CANDLES_FOR_A_CLOSE} candles"
        assert open_positions, "no open position left to close by hand"
        done = closed[0]
        done_row = page.locator(f'#orders-table tr[data-order-id="{done["id"]}"]')
        await expect(done_row.locator(".order-pnl")).to_have_text(
            signed(done["realized_pnl"]), timeout=15_000
        )
        await expect(done_row).to_contain_text(done["exit_reason"])
        summary = await activity(client, web_stack, token, "summary")
        await expect(page.locator("#pnl-total")).to_have_text(f"{signed(summary['realized_pnl_total'])} USDT")
        await expect(page.locator("#pnl-chart svg.equity-chart")).to_be_visible()
        await expect(page.locator("#trade-log-list li").first).to_be_visible()

        # A trade-log message with markup (as an exchange's ret_msg could carry) shows as text.
        async with db.write(Caller.service()) as conn:
            await conn.execute(
                "insert into trade_logs (user_id, order_id, level, event, message) "
                "values (%s, %s, 'warning', 'exchange_message', %s)",
                (user_id_of(token), done["id"], MARKUP),
            )
        await expect(page.locator("#trade-log-list .log-message", has_text="<b>bold</b>").first).to_have_text(
            MARKUP, timeout=15_000
        )
        assert await page.locator("#page img, #page b").count() == 0
        assert await page.evaluate("window.__xss") is None
        await page.screenshot(path=screenshot_path("06-trading-closed"), full_page=True)

        # Disconnecting now is refused while positions are open, with their count (trading-account's rule).
        await page.goto(f"{web_stack.api_url}/#/account")
        await page.click('#accounts-table tr[data-environment="paper"] button[data-action="disconnect"]')
        refusal = page.locator('#accounts-table tr[data-environment="paper"] .row-message')
        await expect(refusal).to_contain_text("still open", timeout=15_000)
        count = int((await refusal.inner_text()).split(" ", 1)[0])
        assert count >= len(open_positions)
        await expect(page.locator('[data-action="confirm-disconnect"]')).to_contain_text(
            f"({count} open order(s)"
        )
        await page.screenshot(path=screenshot_path("06b-account-disconnect-refused"), full_page=True)

        # 6: close a position by hand.
        await page.goto(f"{web_stack.api_url}/#/trading")
        position = open_positions[0]
        button = page.locator(
            f'#positions-table button[data-action="close"][data-order-id="{position["order_id"]}"]'
        )
        await expect(button).to_be_visible(timeout=15_000)
        await button.click()
        # Closed at once (the fill is known), or sent and recorded by the tracker on a later tick.
        await expect(page.locator("#trading-message")).to_have_text(
            re.compile("^(Position closed at .+ realized P&L .+ USDT\\.|Close order sent; .+)$"),
            timeout=30_000,
        )
        for _ in range(10):
            orders = (await activity(client, web_stack, token, "orders"))["orders"]
            by_hand = next(o for o in orders if o["id"] == position["order_id"])
            if by_hand["realized_pnl"] is not None:
                break
            await web_stack.tick(client)
        assert by_hand["realized_pnl"] is not None
        await expect(
            page.locator(f'#positions-table tr[data-order-id="{position["order_id"]}"]')
        ).to_have_count(0, timeout=15_000)
        hand_row = page.locator(f'#orders-table tr[data-order-id="{position["order_id"]}"]')
        await expect(hand_row.locator(".order-pnl")).to_have_text(
            signed(by_hand["realized_pnl"]), timeout=15_000
        )
        await page.screenshot(path=screenshot_path("07-trading-closed-by-hand"), full_page=True)

        # Disconnect: at once with nothing open; else only after confirming the rest stop being tracked.
        still_open = (await activity(client, web_stack, token, "positions"))["positions"]
        await page.goto(f"{web_stack.api_url}/#/account")
        await page.click('#accounts-table tr[data-environment="paper"] button[data-action="disconnect"]')
        if still_open:
            await page.click('[data-action="confirm-disconnect"]', timeout=15_000)
        await expect(page.locator("#account-status")).to_contain_text(
            "No exchange account connected yet", timeout=15_000
        )

    # The System page, signed in.
    await page.goto(f"{web_stack.api_url}/#/system")
    await expect(page.locator("#trading-halted")).to_be_visible(timeout=15_000)
    await page.screenshot(path=screenshot_path("08-system"), full_page=True)

    # 7: sign out.
    await page.click("#sign-out")
    await expect(page).to_have_url(f"{web_stack.api_url}/#/signin", timeout=10_000)
    await expect(page.locator("#nav a", has_text="Trading")).to_have_count(0)
    assert await page.evaluate("sessionStorage.getItem('aitradex.session')") is None
    await page.goto(f"{web_stack.api_url}/#/trading")
    await expect(page).to_have_url(f"{web_stack.api_url}/#/signin", timeout=10_000)
    await page.screenshot(path=screenshot_path("09-signed-out"), full_page=True)

    assert watch.foreign == []
    assert [url for url in watch.urls if token in url] == []
    assert [e for e in watch.errors if "Content Security Policy" in e] == []


def user_id_of(token: str) -> str:
    """The user id (``sub``) in an access token; only read, not verified (the server did that)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])
