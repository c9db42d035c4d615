"""``make demo``: the whole pipeline on the local stack, with no network, in about a minute.

It talks to the running stack the way users and operators do, over HTTP:

1. rebuilds the stack (database, migrations, seeds, functions server, paper exchange, verified);
2. creates two demo users, each with a paper account (``/_paper/accounts``), connected through the
   ``trading-account`` function (a signed balance check, then AES-GCM encryption). Each gets
   different ``trading-preferences``;
3. replays several hours of the bundled 2024 USDT candles (the stack's 24 USDT perpetuals, see
   :mod:`lib.ops.stack_replay`): advance the paper clock one 5-minute candle, then
   ``POST /scheduler/tick`` so the stack's own scheduler runs its pipeline (scans of the timeframes
   that closed, execution, order tracking);
4. prints a summary: signals by score bucket, orders by status per user with their fees and realized
   P&L, and each closed position (prices, quantity, fees and P&L, all in USDT).

Re-running it continues the replay where the last run stopped (the paper exchange keeps its state).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from tqdm import tqdm

from lib.config import Settings, load_settings
from lib.db.target import admin_connection, database_target
from lib.errors import AitradexError
from lib.ops import stack_runner
from lib.ops.rebuild import StepResult, rebuild
from lib.paper_exchange.client import AsyncPaperControls
from lib.services.auth.tokens import mint_api_key
from lib.services.auth.users import create_user_with_password
from lib.stores import reports

DEMO_USERS: dict[str, dict[str, Any]] = {
    "alice@demo.aitradex.local": {
        "auto_trade_enabled": True,
        "algorithms": ["unirail_core"],
        "timeframes": ["5", "15"],
        "min_score": 80,
        "risk_per_trade_pct": 1,
        "max_position_usd": 2000,
        "leverage": 3,
        "max_open_positions": 4,
    },
    # Hourly bars are the cheapest to trade (0.08 R a trade in fees) and the only timeframe whose
    # out-of-sample figures paid (README, "What following a signal earns after fees"). quantum_ai v2 stores
    # no signal (its scores stay below the threshold of 80), so bob follows it too only to show it is silent.
    "bob@demo.aitradex.local": {
        "auto_trade_enabled": True,
        "algorithms": ["unirail_core", "quantum_ai"],
        "timeframes": ["15", "60"],
        "min_score": 80,
        "risk_per_trade_pct": 2,
        "max_position_usd": 5000,
        "leverage": 5,
        "max_open_positions": 6,
    },
}
DEFAULT_HOURS = 6.0


@dataclass
class DemoUser:
    email: str
    user_id: str
    token: str
    # Generated afresh by every demo run (never stored in the repo): printed once, for the web app.
    password: str


async def _call(client: httpx.AsyncClient, name: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    response = await client.post(
        f"/functions/v1/{name}", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    if response.status_code != 200:
        raise AitradexError(
            f"{name} answered HTTP {response.status_code}", details={"body": response.text[:300]}
        )
    result: dict[str, Any] = response.json()
    return result


async def setup_users(settings: Settings, client: httpx.AsyncClient, paper_url: str) -> list[DemoUser]:
    """Create (or reuse) the demo users with a fresh generated password each, connect a fresh paper
    account each, set their preferences."""
    users: list[DemoUser] = []
    with admin_connection(database_target(settings)) as conn:
        for email in DEMO_USERS:
            made = create_user_with_password(
                conn, email, settings.jwt_secret.reveal(), min_length=settings.auth.min_password_length
            )
            users.append(DemoUser(email, made.user.id, made.user.token, made.password))
    paper = AsyncPaperControls(paper_url)
    for user in users:
        account = await paper.create_account("10000")
        await _call(
            client,
            "trading-account",
            {
                "action": "connect",
                "environment": "paper",
                "api_key": account.api_key,
                "api_secret": account.api_secret,
            },
            user.token,
        )
        await _call(client, "trading-preferences", {"action": "update", **DEMO_USERS[user.email]}, user.token)
    return users


async def replay(
    client: httpx.AsyncClient,
    paper_url: str,
    service_key: str,
    candles: int,
    progress: Callable[[dict[str, Any]], Awaitable[None]],
) -> int:
    """Advance the replay candle by candle, ticking the stack's scheduler after each; returns candles run."""
    headers = {"Authorization": f"Bearer {service_key}"}
    await client.post("/scheduler/tick", headers=headers)  # the baseline: the scheduler now knows "now"
    paper = AsyncPaperControls(paper_url, http=client)
    done = 0
    for _ in range(candles):
        clock = await paper.advance(1)
        tick = (await client.post("/scheduler/tick", headers=headers)).json()
        done += 1
        await progress({"time_ms": clock.time_ms, **tick})
        if clock.at_end:
            break
    return done


async def replay_with_bar(
    client: httpx.AsyncClient, paper_url: str, service_key: str, candles: int, *, pace_s: float = 0.0
) -> int:
    """:func:`replay` with a progress bar (the replayed time, any failed job), ``pace_s`` seconds apart."""
    started = time.perf_counter()
    with tqdm(total=candles, unit="candle", disable=None) as bar:

        async def progress(tick: dict[str, Any]) -> None:
            when = datetime.fromtimestamp(int(tick["time_ms"]) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            failed = [name for name, outcome in tick.get("outcomes", {}).items() if outcome != "ok"]
            bar.set_postfix_str(f"replay {when} UTC" + (f" failed: {failed}" if failed else ""))
            bar.update(1)
            if pace_s > 0:
                # Deliberate pacing, so a person watching the web app sees each candle's trades.
                await asyncio.sleep(pace_s)

        done = await replay(client, paper_url, service_key, candles, progress)
    print(f"   replayed {done} candles in {time.perf_counter() - started:.1f} s")
    return done


def run_watch(hours: float, pace_s: float, *, env: dict[str, str] | None = None) -> int:
    """Replay ``hours`` more on the running stack, one candle every ``pace_s`` seconds (``aitradex
    replay``): what a person watching the web app sees trade. Returns the candles replayed."""
    return asyncio.run(watch(hours, pace_s, env=env))


async def watch(hours: float, pace_s: float, *, env: dict[str, str] | None = None) -> int:
    """:func:`run_watch` inside an event loop that is already running (tests)."""
    settings = load_settings(dict(os.environ if env is None else env))
    facts = stack_runner.running_facts(settings)
    if facts is None:
        raise AitradexError("no stack is running: `make demo` (or `aitradex rebuild`) starts one")
    service_key = mint_api_key("service_role", settings.jwt_secret.reveal())

    async with httpx.AsyncClient(base_url=str(facts["api_url"]), timeout=120) as client:
        print(f"Replaying {hours:g} hours on {facts['api_url']}, a candle every {pace_s:g} s:")
        return await replay_with_bar(
            client, str(facts["paper_exchange_url"]), service_key, max(1, int(hours * 12)), pace_s=pace_s
        )


def _bucket_label(bucket: int) -> str:
    low = (bucket - 1) * 10
    return f"{low:>3}-{low + 10:<3}"


async def summary(settings: Settings, since: datetime) -> str:
    """The demo's closing report, read as the service role."""
    lines: list[str] = []
    async with database_target(settings).database(max_size=2) as db:
        signals = await reports.signals_by_bucket(db, since)
    # auth.users is not readable by API roles; the per-user lines go through the owner connection.
    with admin_connection(database_target(settings)) as owner:
        orders = reports.orders_by_user(owner, since, list(DEMO_USERS))
        closes = reports.closes_by_user(owner, since, list(DEMO_USERS))

    lines.append("Signals stored this run (score >= threshold), by algorithm, timeframe and score bucket:")
    if not signals:
        lines.append("  none")
    for row in signals:
        label = _bucket_label(row["bucket"])
        lines.append(f"  {row['algorithm']:<13} {row['timeframe']:>3}m  score {label} {row['n']:>4}")
    lines.append("")
    lines.append("Orders this run, by user and status (USDT: fees paid, realized P&L after fees):")
    if not orders:
        lines.append("  none")
    for email, status, n, pnl, closed, fees in orders:
        lines.append(
            f"  {email:<28} {status:<17} {n:>4}   closed {closed:>3}   "
            f"fees {_usdt(fees, 4):>10}   P&L {_usdt(pnl):>10}"
        )
    lines.append("")
    lines.append("Positions closed by their take-profit or stop-loss (prices and P&L in USDT):")
    if not closes:
        lines.append("  none yet (they close when a later candle reaches TP or SL)")
    for email, symbol, side, qty, entry, exit_price, reason, pnl, fees in closes:
        lines.append(
            f"  {email:<28} {symbol:<12} {side:<4} qty {_plain(qty):>10} entry {_plain(entry):>12} "
            f"exit {_plain(exit_price):>12} {reason or '':<10} fees {_usdt(fees, 4):>8} P&L {_usdt(pnl):>9}"
        )
    return "\n".join(lines)


def _usdt(value: Any, places: int = 2) -> str:
    """An amount of USDT, to the cent by default (``-``: unknown)."""
    return "-" if value is None else f"{Decimal(value):,.{places}f}"


def _plain(value: Any) -> str:
    """A price or quantity as the exchange wrote it, without trailing zeros (``-``: unknown)."""
    if value is None:
        return "-"
    number = Decimal(value).normalize()
    return f"{number:f}"


def run_demo(hours: float = DEFAULT_HOURS, *, env: dict[str, str] | None = None) -> str:
    """Rebuild, set up the demo users, replay ``hours`` of candles, print and return the summary."""
    return asyncio.run(demo(hours, env=env))


async def demo(hours: float = DEFAULT_HOURS, *, env: dict[str, str] | None = None) -> str:
    """:func:`run_demo` inside an event loop that is already running (tests)."""
    env = dict(os.environ if env is None else env)

    def step(result: StepResult) -> None:
        print(f"  [{'changed' if result.changed else 'ok':>7}] {result.name:<14} {result.detail}", flush=True)

    print("1. Rebuilding the stack:")
    rebuild(env=env, progress=step)
    settings = load_settings(env)
    facts = stack_runner.running_facts(settings)
    if facts is None:
        raise AitradexError("the stack is not running after the rebuild")
    service_key = mint_api_key("service_role", settings.jwt_secret.reveal())
    paper_url = str(facts["paper_exchange_url"])
    since = datetime.now(UTC)
    candles = max(1, int(hours * 12))

    async def main() -> tuple[str, list[DemoUser]]:
        async with httpx.AsyncClient(base_url=str(facts["api_url"]), timeout=120) as client:
            print("2. Demo users with paper accounts (connected through trading-account) and preferences:")
            users = await setup_users(settings, client, paper_url)
            for user in users:
                prefs = DEMO_USERS[user.email]
                print(
                    f"   {user.email}: {prefs['algorithms']} on {prefs['timeframes']}, "
                    f"min score {prefs['min_score']}, risk {prefs['risk_per_trade_pct']}%, "
                    f"leverage {prefs['leverage']}x"
                )
            print(f"3. Replaying {hours:g} hours ({candles} five-minute candles) through the scheduler:")
            await replay_with_bar(client, paper_url, service_key, candles)
        print("4. Summary:")
        return await summary(settings, since), users

    report, users = await main()
    print(report)
    print(sign_in_lines(str(facts["api_url"]), users))
    return report


def sign_in_lines(api_url: str, users: list[DemoUser]) -> str:
    """Where the web app is and who can sign in to it: the passwords this run generated."""
    lines = [
        f"5. The web app: {api_url.rstrip('/')}/ (the stack keeps running; `aitradex down` stops it).",
        "   Sign in as (passwords generated by this run, shown only here):",
    ]
    lines += [f"   {user.email}  password: {user.password}" for user in users]
    lines.append(
        "   To watch it trade: `.venv/bin/aitradex replay --hours 2 --pace 3` (the app refreshes itself)."
    )
    return "\n".join(lines)
