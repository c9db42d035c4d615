"""The session in the browser: kept in sessionStorage (never in a URL), refreshed before it expires."""

from __future__ import annotations

import json
import uuid

from playwright.async_api import BrowserContext, expect

from tests.e2e.conftest import PageWatch, WebStack


async def test_the_access_token_is_refreshed_before_it_expires(
    context: BrowserContext, web_stack: WebStack
) -> None:
    page = await context.new_page()
    watch = PageWatch(page, web_stack.api_url)
    await page.goto(f"{web_stack.api_url}/#/signup")
    await page.fill("#signup-form input[name=email]", f"web-{uuid.uuid4().hex[:10]}@test.local")
    await page.fill("#signup-form input[name=password]", "a long enough passphrase 7")
    await page.click("#signup-form button[type=submit]")
    await expect(page).to_have_url(f"{web_stack.api_url}/#/account", timeout=10_000)
    first = json.loads(await page.evaluate("sessionStorage.getItem('aitradex.session')"))

    # As if the token had 30 s left: the app refreshes it at once when it loads (a minute's margin).
    await page.evaluate(
        "s => sessionStorage.setItem('aitradex.session', s)",
        json.dumps({**first, "expires_at": first["expires_at"] - 3600 + 30}),
    )
    await page.reload()
    await page.wait_for_function(
        "old => JSON.parse(sessionStorage.getItem('aitradex.session') || '{}').refresh_token !== old",
        arg=first["refresh_token"],
        timeout=15_000,
    )

    second = json.loads(await page.evaluate("sessionStorage.getItem('aitradex.session')"))
    assert second["access_token"] != first["access_token"]
    assert second["expires_at"] > first["expires_at"] - 3600 + 30
    await expect(page.locator("#account-status")).to_be_visible()
    await expect(page.locator("#who-email")).to_have_text(first["user"]["email"])
    refreshes = [u for u in watch.urls if "grant_type=refresh_token" in u]
    assert len(refreshes) == 1
    for token in (
        first["access_token"],
        first["refresh_token"],
        second["access_token"],
        second["refresh_token"],
    ):
        assert [u for u in watch.urls if token in u] == []
