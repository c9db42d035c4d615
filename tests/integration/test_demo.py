"""make demo's main job, shortened: users, paper accounts, a replay through the scheduler, a summary.

The summary is in real USDT: the stack replays the bundled 2024 USDT pairs, and every price, quantity,
fee and P&L it prints comes from them. No BTC-quoted symbol appears anywhere in it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import numpy as np
import psycopg
import pytest

from lib.config import load_settings
from lib.db.session import Caller, Database
from lib.ops import stack_runner
from lib.ops.demo import DEMO_USERS, demo, watch
from lib.ops.stack_replay import stack_market, stack_symbols
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.auth.tokens import mint_api_key

_BTC_QUOTED = re.compile(r"\b[A-Z0-9]{2,}BTC\b")
_ORDER_LINE = re.compile(
    r"^  (\S+@\S+)\s+(\w+)\s+(\d+)\s+closed\s+(\d+)\s+fees\s+(-?[\d,]+\.\d{4})\s+P&L\s+(-?[\d,]+\.\d{2})$"
)
_CLOSE_LINE = re.compile(
    r"^  (\S+@\S+)\s+([A-Z0-9]+)\s+(Buy|Sell)\s+qty\s+([\d.]+)\s+entry\s+([\d.]+)\s+exit\s+([\d.]+)\s+"
    r"(\w+)\s+fees\s+(-?[\d,]+\.\d{4})\s+P&L\s+(-?[\d,]+\.\d{2})$"
)


async def _scanned_bars(db: Database) -> int:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select count(distinct bar_time) as n from scan_runs "
                "where timeframe = '5' and bar_time is not null and not dry_run"
            )
        ).fetchone()
    return int(row["n"]) if row else 0


def _demo_user_ids(owner: psycopg.Connection) -> list[object]:
    """The demo users' ids (auth.users is the auth server's: only the owner reads it)."""
    rows = owner.execute("select id from auth.users where email = any(%s)", (list(DEMO_USERS),)).fetchall()
    return [row[0] for row in rows]


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def _is_a_replayed_price(symbol: str, price: Decimal) -> bool:
    """Whether ``price`` is one of ``symbol``'s bundled candle opens (where market orders fill)."""
    opens = stack_market().series(symbol).open
    return bool(np.any(np.isclose(opens, float(price), rtol=0, atol=1e-12)))


async def test_the_demo_replays_through_the_stacks_scheduler_and_reports_in_usdt(
    db: Database, owner_conn: psycopg.Connection, test_env: dict[str, str]
) -> None:
    before = await _scanned_bars(db)
    started = datetime.now(UTC)

    report = await demo(hours=1, env=test_env)

    # Twelve 5-minute candles replayed: the stack's own scheduler scanned each new bar once.
    assert await _scanned_bars(db) - before == 12
    assert "Signals stored this run" in report
    assert "Orders this run, by user and status (USDT: fees paid, realized P&L after fees)" in report
    assert "Positions closed by their take-profit or stop-loss (prices and P&L in USDT)" in report
    assert _BTC_QUOTED.findall(report) == []
    lines = report.splitlines()
    orders_at = lines.index("Orders this run, by user and status (USDT: fees paid, realized P&L after fees):")
    closes_at = next(i for i, line in enumerate(lines) if line.startswith("Positions closed"))
    for line in lines[orders_at + 1 : closes_at - 1]:
        if line == "  none":
            continue
        match = _ORDER_LINE.match(line)
        assert match is not None, line
        assert match.group(1) in DEMO_USERS
        assert _number(match.group(5)) >= 0  # fees are paid, never earned (taker fills)
    for line in lines[closes_at + 1 :]:
        if line.startswith("  none yet"):
            continue
        match = _CLOSE_LINE.match(line)
        assert match is not None, line
        symbol, entry = match.group(2), _number(match.group(5))
        assert symbol in stack_symbols()
        assert _is_a_replayed_price(symbol, entry), line  # a real USDT price of that market
        assert _number(match.group(8)) > 0  # a round trip pays two taker fees
    async with db.read(Caller.service()) as conn:
        accounts = await (
            await conn.execute(
                "select count(*) as n from user_trading_accounts a "
                "join trading_preferences p using (user_id) "
                "where a.environment = 'paper' and a.is_active and p.auto_trade_enabled"
            )
        ).fetchone()
        filled = await (
            await conn.execute(
                "select symbol, fee, avg_fill_price, filled_qty from execution_orders "
                "where created_at >= %s and user_id = any(%s) and filled_qty > 0",
                (started, _demo_user_ids(owner_conn)),
            )
        ).fetchall()
    assert accounts is not None
    assert accounts["n"] >= 2
    for row in filled:  # every fill paid Bybit's taker fee on its USDT value
        assert row["symbol"] in stack_symbols()
        assert row["fee"] == (row["avg_fill_price"] * row["filled_qty"] * Decimal("0.00055"))


_SIGN_IN_LINE = re.compile(r"^   (\S+@\S+)  password: (\S+)$")


async def test_the_demo_ends_with_the_web_apps_url_and_sign_ins_that_work_then_replay_watches_more(
    test_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    await demo(hours=0.1, env=test_env)
    printed = capsys.readouterr().out
    url = re.search(r"^5\. The web app: (http://127\.0\.0\.1:\d+)/ ", printed, re.M)
    assert url is not None, printed[-800:]
    sign_ins = {m.group(1): m.group(2) for m in map(_SIGN_IN_LINE.match, printed.splitlines()) if m}
    assert set(sign_ins) == set(DEMO_USERS)
    settings = load_settings(test_env)
    anon = mint_api_key("anon", settings.jwt_secret.reveal())
    async with httpx.AsyncClient(base_url=url.group(1), headers={"apikey": anon}) as client:
        for email, password in sign_ins.items():
            good = await client.post(
                "/auth/v1/token?grant_type=password", json={"email": email, "password": password}
            )
            assert good.status_code == 200, good.text
            assert good.json()["user"]["email"] == email
            bad = await client.post(
                "/auth/v1/token?grant_type=password", json={"email": email, "password": password + "x"}
            )
            assert bad.status_code == 400
    facts = stack_runner.running_facts(settings)
    assert facts is not None
    paper = AsyncPaperControls(str(facts["paper_exchange_url"]))
    before = (await paper.clock()).time_ms
    assert await watch(hours=1 / 6, pace_s=0, env=test_env) == 2
    assert (await paper.clock()).time_ms - before == 2 * 5 * 60 * 1000
