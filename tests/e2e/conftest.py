"""The web app in a real browser: Debian's Chromium driven by Playwright for Python, against the real
stack the session rebuilds (functions server with the web app, paper exchange, embedded PostgreSQL,
the tick-driven replay).

Playwright's own browser builds are never downloaded: the tests launch ``/usr/bin/chromium`` (or
``AITRADEX_CHROMIUM``) headless with a fresh profile. Without it every browser test is skipped, and
the run says so loudly, in a banner at the top of the summary, never silently.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright

from lib.config import REPO_ROOT, Settings
from lib.ops import stack_runner
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.auth.tokens import mint_api_key

CHROMIUM = Path(os.environ.get("AITRADEX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "e2e"
E2E_DIR = Path(__file__).resolve().parent
SKIP_REASON = (
    f"no Chromium at {CHROMIUM}: the browser tests did not run "
    "(apt-get install chromium, or set AITRADEX_CHROMIUM; .ci/run installs it)"
)


def chromium_available() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if chromium_available():
        return
    skipped = 0
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
            skipped += 1
    config.stash[_SKIPPED] = skipped


_SKIPPED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    skipped = config.stash.get(_SKIPPED, 0)
    if skipped:
        terminalreporter.write_sep("!", f"BROWSER TESTS SKIPPED: {skipped} e2e test(s)", red=True, bold=True)
        terminalreporter.write_line(SKIP_REASON, red=True, bold=True)
        terminalreporter.write_sep("!", red=True, bold=True)


@dataclass(frozen=True, slots=True)
class WebStack:
    """The running stack as a browser user and the replay driver see it."""

    api_url: str
    paper_url: str
    service_key: str

    async def tick(self, client: httpx.AsyncClient, candles: int = 1) -> None:
        """Advance the replay ``candles`` five-minute candles, running the stack's scheduler after each."""
        paper = AsyncPaperControls(self.paper_url, http=client)
        for _ in range(candles):
            await paper.advance(1)
            response = await client.post(
                f"{self.api_url}/scheduler/tick", headers={"Authorization": f"Bearer {self.service_key}"}
            )
            assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def web_stack(settings: Settings) -> WebStack:
    """The session's stack (rebuilt as ``make demo`` does it), serving the web app at its API URL."""
    facts = stack_runner.running_facts(settings)
    assert facts is not None, "the session's stack is not running"
    return WebStack(
        api_url=str(facts["api_url"]),
        paper_url=str(facts["paper_exchange_url"]),
        service_key=mint_api_key("service_role", settings.jwt_secret.reveal()),
    )


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest.fixture
async def context(playwright: Playwright, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium with a fresh user-data-dir of its own (no cookies, storage or cache from anywhere)."""
    ctx = await playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=str(CHROMIUM),
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1280, "height": 900},
    )
    yield ctx
    await ctx.close()


class PageWatch:
    """What the page did that a test must know about: console errors, CSP violations, other hosts."""

    def __init__(self, page: Page, own_origin: str) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.urls: list[str] = []
        page.on("request", lambda req: self.urls.append(req.url))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on(
            "request",
            lambda req: (
                self.foreign.append(req.url)
                if not req.url.startswith((own_origin, "data:", "about:"))
                else None
            ),
        )


def screenshot_path(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")
