"""The scanner end to end: a paper exchange over real HTTP, the real database as service_role.

This module runs its own paper exchange, serving the first two weeks of eight bundled USDT pairs'
five-minute candles under symbol names unique to this run (``S<hex>ETHUSDT``...), so its signals never
meet another test's (or an earlier run's), its clock can be advanced and faults injected without
touching the session's exchange. Its replay starts 2,600 candles into the data, so even hourly bars
have the 200 bars of history scoring needs. Signals left
'new' would be work for the executor: every test hands its rows back as 'skipped'.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from lib.core.candles import Candidate, CandlePanel
from lib.core.timeframes import FIVE_MINUTES_MS, nominal_interval_ms
from lib.db.session import Caller, Database
from lib.errors import ConfigError
from lib.exchange.access import MarketAccess
from lib.exchange.market import MarketDataClient, RetryPolicy
from lib.exchange.market_clock import PaperClock, market_clock_for
from lib.exchange.rate_limit import RateLimiter
from lib.paper_exchange.client import AsyncPaperControls
from lib.research.bundled_data import BUNDLED_USDT_DIR, candle_path, load_candles
from lib.services import diagnostics
from lib.services.scanning.models import ScanRequest
from lib.services.scanning.scanner import run_scans, scan
from lib.services.scanning.settings import ScanSettings, load_scan_settings

START_CANDLES = 2_600
#: The pairs served (the eight most traded five-minute ones), each cut to its first 4,000 candles.
PAIRS = ("BTCUSDT", "DOGEUSDT", "ETHUSDT", "LINKUSDT", "PEPEUSDT", "SOLUSDT", "SUIUSDT", "XRPUSDT")
CANDLES_KEPT = 4_000
FIVE_MIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Exchange:
    url: str
    symbols: tuple[str, ...]  # this run's names, in the bundled files' order
    access: MarketAccess

    async def replay_ms(self) -> int:
        return await PaperClock(self.url).now_ms()

    @property
    def controls(self) -> AsyncPaperControls:
        return AsyncPaperControls(self.url)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    from lib.paper_exchange.config import PaperExchangeConfig
    from lib.paper_exchange.server import running_paper_exchange

    prefix = "S" + uuid.uuid4().hex[:6].upper()
    data = tmp_path_factory.mktemp("scanner-data")
    names = []
    for bundled in PAIRS:
        name = prefix + bundled
        source = candle_path(bundled, BUNDLED_USDT_DIR, "5")
        assert source is not None
        lines = gzip.decompress(source.read_bytes()).decode().splitlines()[: CANDLES_KEPT + 1]
        (Path(data) / f"{name}-5m.csv").write_text("\n".join(lines) + "\n")
        names.append(name)
    first_ms = min(int(load_candles(n, data).open_time_ms[0]) for n in names)
    config = PaperExchangeConfig(
        data_dir=data, state_path=None, port=0, start_time_ms=first_ms + START_CANDLES * FIVE_MINUTES_MS
    )
    with running_paper_exchange(config) as url:
        # The paper exchange has no rate limit: the limiter is off, as it would be for a local replay.
        yield Exchange(url, tuple(names), MarketAccess(paper_url=url, limiter=RateLimiter(None)))


@pytest.fixture
async def cleanup(db: Database, exchange: Exchange) -> AsyncIterator[None]:
    """After each test: this run's 'new' signals are not work for the executor, hand them back."""
    yield
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update signals set status = 'skipped' where symbol = any(%s) and status = 'new'",
            ([*exchange.symbols, "NOSUCHUSDT"],),
        )


@pytest.fixture
async def scan_settings(db: Database) -> ScanSettings:
    """The seeded app_settings, as the scanner reads them."""
    return await load_scan_settings(db)


async def signal_rows(db: Database, where: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        cursor = await conn.execute(f"select * from signals where {where} order by symbol", params)
        return list(await cursor.fetchall())


async def scan_run(db: Database, run_id: str) -> dict[str, Any]:
    async with db.read(Caller.service()) as conn:
        row = await (await conn.execute("select * from scan_runs where id = %s", (run_id,))).fetchone()
    assert row is not None
    return dict(row)


def last_closed_bar(replay_ms: int, minutes: int = 5) -> datetime:
    width = minutes * 60_000
    return datetime.fromtimestamp((replay_ms // width * width - width) / 1000, tz=UTC)


# -- the real scorer, end to end ------------------------------------------------------------------


@pytest.mark.usefixtures("cleanup")
async def test_a_scan_stores_one_new_signal_per_qualifying_symbol_with_levels_components_and_expiry(
    db: Database, exchange: Exchange
) -> None:
    replay = await exchange.replay_ms()
    result = await scan(
        ScanRequest(timeframe="5", symbols=exchange.symbols, min_score=0),
        db=db,
        market_access=exchange.access,
    )

    bar = last_closed_bar(replay)  # the bar before the one in progress at replay time
    assert result.bar_time == bar
    assert result.symbols_requested == len(exchange.symbols)
    assert result.symbols_scanned >= len(exchange.symbols) - 1  # a gap may sideline one pair
    assert result.candidates >= 1
    assert result.qualified == result.candidates  # min_score 0: every candidate qualifies
    assert result.signals_created + result.duplicates == result.qualified
    assert result.signals_created >= 1
    rows = await signal_rows(db, "id = any(%s)", ([uuid.UUID(i) for i in result.signal_ids],))
    assert len(rows) == result.signals_created
    for row in rows:
        assert row["symbol"] in exchange.symbols
        assert (row["timeframe"], row["algorithm"], row["category"]) == ("5", "unirail_core", "linear")
        assert row["status"] == "new"
        assert row["bar_time"] == bar
        assert row["expires_at"] == bar + FIVE_MIN + 3 * FIVE_MIN  # bar close + scanner.signal_ttl_bars bars
        if row["direction"] == "LONG":
            assert row["stop_loss"] < row["entry_price"] < row["take_profit"]
        else:
            assert row["take_profit"] < row["entry_price"] < row["stop_loss"]
        assert row["atr"] > 0
        parts = row["components"]
        assert set(parts) >= {
            "trend",
            "momentum",
            "strength",
            "volume",
            "entry",
            "volatility",
            "confirmation",
        }
        # unirail_core's components add up to its score (stored rounded to 2 decimals).
        assert float(row["score"]) == pytest.approx(sum(parts.values()), abs=0.011)

    run = await scan_run(db, result.run_id)
    assert run["status"] == result.status
    assert result.status == ("succeeded" if not result.errors else "partial")
    assert (run["symbols_requested"], run["symbols_scanned"]) == (
        len(exchange.symbols),
        result.symbols_scanned,
    )
    assert (run["candidates"], run["signals_created"]) == (result.candidates, result.signals_created)
    assert run["dry_run"] is False
    assert run["finished_at"] is not None
    assert run["duration_ms"] == result.duration_ms


@pytest.mark.usefixtures("cleanup")
async def test_the_same_scan_twice_adds_nothing_and_one_candle_later_adds_only_the_new_bar(
    db: Database, exchange: Exchange
) -> None:
    request = ScanRequest(timeframe="5", symbols=exchange.symbols, min_score=0)
    first = await scan(request, db=db, market_access=exchange.access)
    second = await scan(request, db=db, market_access=exchange.access)

    assert second.bar_time == first.bar_time
    assert second.qualified == first.qualified
    assert second.signals_created == 0
    assert second.signal_ids == ()
    assert second.duplicates == first.qualified
    on_bar = await signal_rows(
        db, "symbol = any(%s) and bar_time = %s", (list(exchange.symbols), first.bar_time)
    )
    assert len(on_bar) == first.qualified

    await exchange.controls.advance(1)
    third = await scan(request, db=db, market_access=exchange.access)

    assert first.bar_time is not None
    assert third.bar_time == first.bar_time + FIVE_MIN
    assert third.signals_created == third.qualified >= 1
    new_rows = await signal_rows(db, "id = any(%s)", ([uuid.UUID(i) for i in third.signal_ids],))
    assert {row["bar_time"] for row in new_rows} == {third.bar_time}
    still = await signal_rows(
        db, "symbol = any(%s) and bar_time = %s", (list(exchange.symbols), first.bar_time)
    )
    assert len(still) == len(on_bar)


@pytest.mark.usefixtures("cleanup")
async def test_the_universe_comes_from_the_exchanges_tickers_most_traded_first(
    db: Database, exchange: Exchange
) -> None:
    everything = await scan(ScanRequest(timeframe="5", dry_run=True), db=db, market_access=exchange.access)
    capped = await scan(
        ScanRequest(timeframe="5", max_symbols=3, dry_run=True), db=db, market_access=exchange.access
    )

    assert everything.symbols_requested == len(exchange.symbols)
    assert capped.symbols_requested == 3
    async with httpx.AsyncClient() as http:
        tickers = await MarketDataClient(http, exchange.url, limiter=RateLimiter(None)).tickers("linear")
    top3 = [t.symbol for t in sorted(tickers, key=lambda t: (-t.turnover_24h, t.symbol))][:3]
    run = await scan_run(db, capped.run_id)
    scanned_or_failed = set(top3)
    assert {e["symbol"] for e in run["errors"]} <= scanned_or_failed
    assert capped.symbols_scanned + len(run["errors"]) == 3


@pytest.mark.usefixtures("cleanup")
async def test_a_dry_run_scores_and_records_its_run_but_stores_no_signal(
    db: Database, exchange: Exchange
) -> None:
    before = await signal_rows(db, "symbol = any(%s)", (list(exchange.symbols),))
    result = await scan(
        ScanRequest(timeframe="5", symbols=exchange.symbols, min_score=0, dry_run=True),
        db=db,
        market_access=exchange.access,
    )
    after = await signal_rows(db, "symbol = any(%s)", (list(exchange.symbols),))

    assert result.qualified >= 1
    assert (result.signals_created, result.signal_ids, result.duplicates) == (0, (), 0)
    assert len(after) == len(before)
    run = await scan_run(db, result.run_id)
    assert run["dry_run"] is True
    assert run["signals_created"] == 0
    assert run["candidates"] == result.candidates


@pytest.mark.usefixtures("cleanup")
async def test_an_unknown_symbol_is_reported_in_the_run_and_the_others_are_still_scanned(
    db: Database, exchange: Exchange
) -> None:
    result = await scan(
        ScanRequest(timeframe="5", symbols=(*exchange.symbols[:3], "NOSUCHUSDT"), min_score=0, dry_run=True),
        db=db,
        market_access=exchange.access,
    )

    assert result.status == "partial"
    unknown = [e for e in result.errors if e.symbol == "NOSUCHUSDT"]
    assert len(unknown) == 1
    assert unknown[0].code == "exchange_rejected"
    assert result.symbols_requested == 4
    assert result.symbols_scanned == 3 - (len(result.errors) - 1)
    assert result.symbols_scanned >= 2
    run = await scan_run(db, result.run_id)
    assert run["status"] == "partial"
    assert {"symbol": "NOSUCHUSDT", "code": "exchange_rejected"}.items() <= next(
        e for e in run["errors"] if e["symbol"] == "NOSUCHUSDT"
    ).items()


@pytest.mark.usefixtures("cleanup")
async def test_an_exchange_failing_every_kline_request_fails_the_run_without_raising(
    db: Database, exchange: Exchange, scan_settings: ScanSettings
) -> None:
    await exchange.controls.set_faults({"seed": 1, "market": {"http_5xx_probability": 1.0}})
    try:
        async with httpx.AsyncClient() as http:
            market = MarketDataClient(
                http, exchange.url, limiter=RateLimiter(None), retry=RetryPolicy(max_attempts=1)
            )
            (result,) = await run_scans(
                [ScanRequest(timeframe="5", symbols=exchange.symbols[:4], min_score=0)],
                db=db,
                market=market,
                clock=PaperClock(exchange.url),
                settings=scan_settings,
            )
    finally:
        await exchange.controls.clear_faults()

    assert result.status == "failed"
    assert [e.symbol for e in result.errors] == list(exchange.symbols[:4])
    assert {e.code for e in result.errors} == {"exchange_unavailable"}
    assert (result.symbols_scanned, result.signals_created) == (0, 0)
    run = await scan_run(db, result.run_id)
    assert (run["status"], len(run["errors"])) == ("failed", 4)


# -- the scan core with a test scorer --------------------------------------------------------------


def fixed_scorer(score: float, broken: str | None = None) -> Any:
    """A scorer giving every symbol a LONG at ``score`` on the panel's last bar; ``broken`` gets a SHORT
    whose take-profit is below zero (ordered, but a price the table refuses)."""

    def scorer(algorithm: str, panel: CandlePanel) -> list[Candidate]:
        out = []
        for i, symbol in enumerate(panel.symbols):
            close = float(panel.close[i, -1])
            bar = int(panel.open_time_ms[-1])
            if symbol == broken:
                out.append(
                    Candidate(symbol, "SHORT", score, 0.5, close, close * 1.1, -close, close * 0.01, bar)
                )
            else:
                out.append(
                    Candidate(
                        symbol,
                        "LONG",
                        score,
                        0.5,
                        close,
                        close * 0.9,
                        close * 1.2,
                        close * 0.01,
                        bar,
                        {"x": score},
                    )
                )
        return out

    return scorer


async def test_only_candidates_at_or_above_the_threshold_qualify_and_a_refused_level_is_reported(
    db: Database, exchange: Exchange, scan_settings: ScanSettings
) -> None:
    symbols = exchange.symbols[:4]
    async with exchange.access.client("paper") as market:
        clock = PaperClock(exchange.url)
        below = await run_scans(
            [ScanRequest(timeframe="5", symbols=symbols, dry_run=True)],
            db=db,
            market=market,
            clock=clock,
            settings=scan_settings,
            scorer=fixed_scorer(79.99),
        )
        at = await run_scans(
            [ScanRequest(timeframe="5", symbols=symbols, dry_run=True)],
            db=db,
            market=market,
            clock=clock,
            settings=replace(scan_settings, threshold=80),
            scorer=fixed_scorer(80, broken=symbols[0]),
        )

    assert below[0].candidates == below[0].symbols_scanned
    assert below[0].qualified == 0  # the seeded threshold is 80
    assert at[0].qualified == at[0].symbols_scanned - 1
    (refused,) = [e for e in at[0].errors if e.code == "invalid_candidate"]
    assert refused.symbol == symbols[0]


async def test_one_fetch_serves_several_algorithms_with_a_run_each(
    db: Database, exchange: Exchange, scan_settings: ScanSettings
) -> None:
    calls: list[tuple[str, int]] = []
    inner = fixed_scorer(50)

    def scorer(algorithm: str, panel: CandlePanel) -> list[Candidate]:
        calls.append((algorithm, len(panel.symbols)))
        return inner(algorithm, panel)

    async with exchange.access.client("paper") as market:
        results = await run_scans(
            [
                ScanRequest(timeframe="5", symbols=exchange.symbols, algorithm="unirail_core", dry_run=True),
                ScanRequest(timeframe="5", symbols=exchange.symbols, algorithm="quantum_ai", dry_run=True),
            ],
            db=db,
            market=market,
            clock=PaperClock(exchange.url),
            settings=scan_settings,
            scorer=scorer,
        )

    assert [r.algorithm for r in results] == ["unirail_core", "quantum_ai"]
    assert len({r.run_id for r in results}) == 2
    assert [c[0] for c in calls] == ["unirail_core", "quantum_ai"]  # one vectorized call each
    assert calls[0][1] == results[0].symbols_scanned > 1


async def test_a_scorer_failure_fails_every_run_it_touches_and_is_raised(
    db: Database, exchange: Exchange, scan_settings: ScanSettings
) -> None:
    def scorer(algorithm: str, panel: CandlePanel) -> list[Candidate]:
        raise ConfigError(f"model weights missing ({marker})")

    marker = uuid.uuid4().hex

    async with exchange.access.client("paper") as market:
        with pytest.raises(ConfigError):
            await run_scans(
                [ScanRequest(timeframe="5", symbols=exchange.symbols[:2], dry_run=True)],
                db=db,
                market=market,
                clock=PaperClock(exchange.url),
                settings=scan_settings,
                scorer=scorer,
            )
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select * from scan_runs where errors @> %s::jsonb",
                (f'[{{"message": "model weights missing ({marker})"}}]',),
            )
        ).fetchone()
    assert row is not None
    assert row["status"] == "failed"
    assert row["errors"][-1] == {
        "symbol": None,
        "code": "config_error",
        "message": f"model weights missing ({marker})",
    }
    assert row["finished_at"] is not None


# -- freshness -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cleanup")
async def test_scan_freshness_in_diagnostics_is_healthy_after_scanning_each_scheduled_timeframe(
    db: Database, exchange: Exchange, scan_settings: ScanSettings
) -> None:
    for timeframe in scan_settings.timeframes:
        result = await scan(
            ScanRequest(timeframe=timeframe, symbols=exchange.symbols, min_score=100),
            db=db,
            market_access=exchange.access,
        )
        assert result.status in ("succeeded", "partial"), result.errors
        assert result.symbols_scanned >= 1
    # Freshness is judged in market time: this exchange's replay clock, which stands still here.
    market_ms = await market_clock_for("paper", paper_url=exchange.access.paper_url).now_ms()
    market_now = datetime.fromtimestamp(market_ms / 1000, UTC)

    check = await diagnostics.check_scans(db, datetime.now(UTC), market_now)

    assert check.status == "healthy"
    # Each timeframe's newest scanned bar closed within one candle of the replay time.
    assert all(check.details["age_s"][tf] < nominal_interval_ms(tf) / 1000 for tf in scan_settings.timeframes)


# -- the command line ------------------------------------------------------------------------------


def test_aitradex_scan_runs_in_process_against_the_stacks_paper_exchange_and_prints_a_summary(
    stack: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lib.cli import main

    monkeypatch.setenv("AITRADEX_DB_NAME", "aitradex_test")  # the stack the session rebuilt and started
    code = main(
        ["scan", "-t", "5", "--symbols", "ethusdt,SOLUSDT,NOSUCHUSDT", "--dry-run", "--min-score", "0"]
    )
    out = capsys.readouterr().out

    assert code == 0
    header, row, *errors = out.strip().splitlines()
    assert header.split()[:4] == ["timeframe", "algorithm", "status", "bar"]
    assert row.split()[:4] == ["5", "unirail_core", "partial", "(dry"]
    assert row.split()[7:9] == ["3", "2"]  # symbols requested, scanned
    assert errors == [next(e for e in errors if e.startswith("! NOSUCHUSDT: exchange_rejected:"))]


def test_aitradex_scan_refuses_bad_arguments_with_a_reason(
    stack: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lib.cli import main

    monkeypatch.setenv("AITRADEX_DB_NAME", "aitradex_test")
    assert main(["scan", "-t", "5", "--max-symbols", "0", "--dry-run"]) == 1
    assert "max_symbols must be at least 1" in capsys.readouterr().err


# -- the scanner's pure parts ----------------------------------------------------------------------


def test_the_seeded_app_settings_parse_into_the_scanners_settings() -> None:
    import json

    from lib.ops.rebuild import APP_SETTINGS_FILE

    seed = {row["key"]: row["value"] for row in json.loads(APP_SETTINGS_FILE.read_text())}
    parsed = ScanSettings.from_values(seed)

    assert parsed.threshold == 80
    assert parsed.timeframes == ("5", "15", "60")
    assert parsed.kline_limit == 300
    assert parsed.signal_ttl_bars == 3
    assert (parsed.environment, parsed.rate_limit_share) == ("paper", 0.5)
    assert parsed.universe.max_symbols == 500


@pytest.mark.parametrize(
    "values",
    [
        {"scanner.threshold": 120},
        {"scanner.threshold": "80"},
        {"scanner.timeframes": ["7"]},
        {"scanner.algorithms": []},
        {"scanner.kline_limit": 150},  # fewer than the 200 closed bars scoring needs
        {"scanner.signal_ttl_bars": 0},
        {"exchange.environment": "moon"},
        {"exchange.rate_limit_share": 1.5},
        {"scanner.universe": {"category": "option"}},
    ],
)
def test_a_malformed_scanner_setting_is_a_config_error(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ScanSettings.from_values(values)


def test_a_signal_expires_its_ttl_in_candles_after_its_bar_closes() -> None:
    from lib.services.scanning.candidates import expires_at_ms

    bar = int(datetime(2018, 1, 12, 7, 0, tzinfo=UTC).timestamp() * 1000)
    assert expires_at_ms("5", bar, 3) == bar + 4 * 5 * 60_000
    january = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert expires_at_ms("M", january, 2) == int(datetime(2024, 4, 1, tzinfo=UTC).timestamp() * 1000)


def test_candidates_the_table_would_refuse_are_reported_instead_of_failing_the_batch() -> None:
    from lib.services.scanning.candidates import check_candidates

    times = np.array([0, 300_000], dtype=np.int64)
    prices = np.ones((3, 2))
    panel = CandlePanel(("A1", "B1", "C1"), times, prices, prices, prices, prices, prices)
    good = Candidate("A1", "LONG", 90, 0.5, 1.0, 0.9, 1.2, 0.01, 300_000)
    old_bar = Candidate("B1", "LONG", 90, 0.5, 1.0, 0.9, 1.2, 0.01, 0)
    negative_tp = Candidate("C1", "SHORT", 90, 0.5, 1.0, 1.1, -0.2, 0.01, 300_000)
    stranger = Candidate("ZZ", "LONG", 90, 0.5, 1.0, 0.9, 1.2, 0.01, 300_000)

    kept, refused = check_candidates([good, old_bar, negative_tp, stranger, good], panel)

    assert kept == [good]
    assert [(e.symbol, e.code) for e in refused] == [
        ("B1", "invalid_candidate"),
        ("C1", "invalid_candidate"),
        ("ZZ", "invalid_candidate"),
        ("A1", "invalid_candidate"),  # a second candidate for one symbol
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"timeframe": "7"},
        {"timeframe": "5", "algorithm": "magic"},
        {"timeframe": "5", "max_symbols": 0},
        {"timeframe": "5", "min_score": -1},
        {"timeframe": "5", "symbols": ()},
    ],
)
def test_a_scan_request_is_checked_before_anything_runs(fields: dict[str, Any]) -> None:
    from lib.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        ScanRequest(**fields)


async def test_scans_run_together_must_differ_only_by_algorithm(
    db: Database, exchange: Exchange, scan_settings: ScanSettings
) -> None:
    from lib.errors import InvalidRequest

    a = ScanRequest(timeframe="5", algorithm="unirail_core", dry_run=True)
    b = ScanRequest(timeframe="5", algorithm="quantum_ai", dry_run=True)
    async with exchange.access.client("paper") as market:
        for requests in ([a, b, b], [a, replace(b, timeframe="15")], [a, replace(b, dry_run=False)]):
            with pytest.raises(InvalidRequest):
                await run_scans(
                    requests, db=db, market=market, clock=PaperClock(exchange.url), settings=scan_settings
                )
