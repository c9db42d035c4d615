"""The scanner: market data -> one vectorized scoring call -> signals, and a ``scan_runs`` row per run.

One scan of a timeframe:

1. reads the market time (the paper exchange's replay clock, or wall time) and the universe: the
   request's ``symbols``, or ``/v5/market/tickers`` (+ instruments-info) filtered by ``scanner.universe``;
2. fetches ``scanner.kline_limit`` klines per symbol concurrently, every request through the process's
   shared rate limiter;
3. builds one :class:`~lib.core.candles.CandlePanel` of closed bars (``lib.core.panel``: the candle in
   progress is dropped, holes are never patched) and scores every symbol in ONE call of the scorer;
4. stores candidates scoring at least the threshold (``scanner.threshold``, or the request's
   ``min_score``) as ``new`` signals, ``insert ... on conflict do nothing`` on (symbol, timeframe,
   algorithm, direction, bar_time), so running the same scan twice on the same bar adds nothing;
5. records the run in ``scan_runs`` (inserted as ``running`` first, so a crash leaves a trace).

A symbol whose data fails (an exchange error, too little history, NaNs, a stale series, levels the
database would refuse) is reported in the run's ``errors`` and does not stop the others. Status:
``succeeded`` (no errors), ``partial`` (errors, but something was scored), ``failed`` (nothing scored).
A failure of the whole run (the universe or the market clock cannot be read, the scorer raises) is
recorded as ``failed`` and raised. ``dry_run`` stores no signal but still records its run
(``dry_run = true``, which diagnostics ignores for freshness).

All database work runs as ``service_role`` (``Caller.service()``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lib.app.scheduler import CandleClose, Job, MarketClock, Scheduler, market_clock_for
from lib.core.candles import Candidate, CandlePanel
from lib.core.panel import PanelBuild, build_panel
from lib.core.timeframes import TIMEFRAMES, candle_close_ms
from lib.core.vocabulary import ALGORITHMS, ENVIRONMENTS
from lib.db.session import Caller, Database
from lib.errors import AitradexError, ConfigError, InvalidRequest
from lib.exchange.market import MarketDataClient
from lib.exchange.models import Klines
from lib.exchange.rate_limit import DEFAULT_SHARE
from lib.log import log_event
from lib.services.scanning.universe import UniverseFilter, select_universe
from lib.stores import settings as settings_store

if TYPE_CHECKING:
    from lib.app.context import Services
    from lib.config import Settings as AppSettings
    from lib.exchange.access import MarketAccess

logger = logging.getLogger("aitradex.scanner")

RunStatus = Literal["succeeded", "partial", "failed"]
Scorer = Callable[[str, CandlePanel], Sequence[Candidate]]

#: Closed bars a symbol needs: the slowest feature, SMA200, has its first value on bar 200.
MIN_BARS = 200
#: Kline requests in flight at once; the rate limiter, not this, sets the request rate. Measured
#: (bench/scan.py, 500 symbols, 2 cores): 8 saturates the paper exchange and a 60 req/s budget, and
#: more is slower, since httpcore's pool does work per waiting request on every assignment.
DEFAULT_CONCURRENCY = 8


def default_scorer(algorithm: str, panel: CandlePanel) -> Sequence[Candidate]:
    """``lib.scoring.score``, imported on first use (it loads numba kernels and model weights)."""
    from lib.scoring import score

    return score(algorithm, panel)


# -- settings --------------------------------------------------------------------------------------

SETTING_KEYS: tuple[str, ...] = (
    "scanner.threshold",
    "scanner.threshold_by_algorithm",
    "scanner.timeframes",
    "scanner.algorithms",
    "scanner.universe",
    "scanner.kline_limit",
    "scanner.signal_ttl_bars",
    "exchange.environment",
    "exchange.rate_limit_share",
)


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """The scanner's part of ``app_settings``, validated (defaults are the seed's)."""

    threshold: float = 80.0
    # Per-algorithm overrides of ``threshold``: a calibrated probability needs its own bar (see README).
    threshold_by_algorithm: Mapping[str, float] = field(default_factory=dict)
    timeframes: tuple[str, ...] = ("5", "15", "60")
    algorithms: tuple[str, ...] = ("unirail_core", "quantum_ai")
    universe: UniverseFilter = field(default_factory=UniverseFilter)
    kline_limit: int = 300
    signal_ttl_bars: int = 3
    environment: str = "paper"
    rate_limit_share: float | None = DEFAULT_SHARE

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 100:
            raise ConfigError(f"scanner.threshold must be 0..100, got {self.threshold}")
        for algorithm, value in self.threshold_by_algorithm.items():
            if algorithm not in ALGORITHMS or not 0 <= value <= 100:
                raise ConfigError(f"scanner.threshold_by_algorithm: {algorithm!r} -> {value} is not allowed")
        if not set(self.timeframes) <= set(TIMEFRAMES):
            raise ConfigError(f"scanner.timeframes holds an unknown interval: {list(self.timeframes)}")
        if not self.algorithms or not set(self.algorithms) <= set(ALGORITHMS):
            raise ConfigError(f"scanner.algorithms must be a non-empty subset of {ALGORITHMS}")
        # One bar more than needed: the newest kline is usually the candle in progress, dropped.
        if not MIN_BARS + 1 <= self.kline_limit <= 1000:
            raise ConfigError(f"scanner.kline_limit must be {MIN_BARS + 1}..1000, got {self.kline_limit}")
        if not 1 <= self.signal_ttl_bars <= 1000:
            raise ConfigError(f"scanner.signal_ttl_bars must be 1..1000, got {self.signal_ttl_bars}")
        if self.environment not in ENVIRONMENTS:
            raise ConfigError(f"exchange.environment must be one of {ENVIRONMENTS}, got {self.environment!r}")
        if self.rate_limit_share is not None and not 0 < self.rate_limit_share <= 1:
            raise ConfigError(f"exchange.rate_limit_share must be in (0, 1], got {self.rate_limit_share}")

    def threshold_for(self, algorithm: str) -> float:
        """The minimum score stored for ``algorithm``: its override, else ``scanner.threshold``."""
        return self.threshold_by_algorithm.get(algorithm, self.threshold)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ScanSettings:
        """Build from ``{key: json value}`` of ``app_settings``; a missing key keeps its default."""
        base = cls()
        try:
            share = values.get("exchange.rate_limit_share", base.rate_limit_share)
            return cls(
                threshold=_number(values.get("scanner.threshold", base.threshold)),
                threshold_by_algorithm={
                    str(k): _number(v)
                    for k, v in dict(values.get("scanner.threshold_by_algorithm") or {}).items()
                },
                timeframes=_strings(values.get("scanner.timeframes", list(base.timeframes))),
                algorithms=_strings(values.get("scanner.algorithms", list(base.algorithms))),
                universe=UniverseFilter.from_setting(values.get("scanner.universe", {})),
                kline_limit=int(_number(values.get("scanner.kline_limit", base.kline_limit))),
                signal_ttl_bars=int(_number(values.get("scanner.signal_ttl_bars", base.signal_ttl_bars))),
                environment=str(values.get("exchange.environment", base.environment)),
                rate_limit_share=None if share is None else _number(share),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"a scanner setting is malformed: {exc}") from None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


async def load_scan_settings(db: Database) -> ScanSettings:
    """Read the scanner's settings from ``app_settings`` (as service_role)."""
    return ScanSettings.from_values(await settings_store.read_values(db, SETTING_KEYS))


# -- requests and results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """What to scan. ``symbols`` replaces the universe selection (scanned as given, in that order);
    ``max_symbols`` replaces the universe's cap; ``min_score`` replaces ``scanner.threshold``."""

    timeframe: str
    algorithm: str = "unirail_core"
    symbols: tuple[str, ...] | None = None
    max_symbols: int | None = None
    min_score: float | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.timeframe not in TIMEFRAMES:
            raise InvalidRequest(
                f"unknown timeframe {self.timeframe!r}", details={"allowed": list(TIMEFRAMES)}
            )
        if self.algorithm not in ALGORITHMS:
            raise InvalidRequest(
                f"unknown algorithm {self.algorithm!r}", details={"allowed": list(ALGORITHMS)}
            )
        if self.max_symbols is not None and self.max_symbols < 1:
            raise InvalidRequest("max_symbols must be at least 1")
        if self.min_score is not None and not 0 <= self.min_score <= 100:
            raise InvalidRequest("min_score must be 0..100")
        if self.symbols is not None and not self.symbols:
            raise InvalidRequest("symbols, when given, must name at least one symbol")


@dataclass(frozen=True, slots=True)
class SymbolError:
    """One symbol that could not be scored (``symbol`` is None for a failure of the whole run)."""

    symbol: str | None
    code: str
    message: str

    def as_json(self) -> dict[str, Any]:
        """The shape stored in ``scan_runs.errors``."""
        return {"symbol": self.symbol, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One finished scan run."""

    run_id: str
    status: RunStatus
    timeframe: str
    algorithm: str
    dry_run: bool
    threshold: float
    #: Open time of the bar scored (the newest closed bar), None when nothing was scored.
    bar_time: datetime | None
    symbols_requested: int
    symbols_scanned: int
    candidates: int
    #: Candidates at or above the threshold (stored unless dry_run or already stored).
    qualified: int
    signals_created: int
    #: Qualified candidates already stored by an earlier scan of the same bar.
    duplicates: int
    signal_ids: tuple[str, ...]
    errors: tuple[SymbolError, ...]
    duration_ms: int


class ScanProgress(Protocol):
    """Progress callbacks (the CLI's progress bar); both must return quickly."""

    def universe(self, symbols: int) -> None:
        """How many symbols will be fetched."""

    def fetched(self, symbol: str, ok: bool) -> None:
        """One symbol's klines arrived (or failed)."""


class _NoProgress:
    def universe(self, symbols: int) -> None:
        pass

    def fetched(self, symbol: str, ok: bool) -> None:
        pass


# -- the market side -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Snapshot:
    now_ms: int
    requested: tuple[str, ...]
    klines: dict[str, Klines]
    errors: list[SymbolError]


async def _universe(
    market: MarketDataClient, settings: ScanSettings, request: ScanRequest
) -> tuple[str, ...]:
    if request.symbols is not None:
        symbols = tuple(dict.fromkeys(request.symbols))
        return symbols[: request.max_symbols] if request.max_symbols else symbols
    category = settings.universe.category
    tickers, instruments = await asyncio.gather(market.tickers(category), market.instruments(category))
    selection = select_universe(tickers, instruments, settings.universe, max_symbols=request.max_symbols)
    log_event(
        logger,
        "scan_universe",
        category=category,
        considered=selection.considered,
        selected=len(selection.symbols),
        excluded=dict(selection.excluded),
    )
    return selection.symbols


async def _fetch(
    market: MarketDataClient,
    category: str,
    symbols: Sequence[str],
    timeframe: str,
    limit: int,
    concurrency: int,
    progress: ScanProgress,
) -> tuple[dict[str, Klines], list[SymbolError]]:
    # Not MarketDataClient.klines_many: the same concurrency and per-symbol errors, plus a progress hook.
    gate = asyncio.Semaphore(concurrency)
    fetched: dict[str, Klines] = {}
    failed: dict[str, SymbolError] = {}

    async def one(symbol: str) -> None:
        async with gate:
            try:
                fetched[symbol] = await market.klines(category, symbol, timeframe, limit=limit)
            except AitradexError as error:
                failed[symbol] = SymbolError(symbol, error.code, error.message)
        progress.fetched(symbol, symbol in fetched)

    await asyncio.gather(*(one(symbol) for symbol in symbols))
    ordered = {s: fetched[s] for s in symbols if s in fetched}
    return ordered, [failed[s] for s in symbols if s in failed]


async def _snapshot(
    market: MarketDataClient,
    clock: MarketClock,
    settings: ScanSettings,
    request: ScanRequest,
    concurrency: int,
    progress: ScanProgress,
) -> _Snapshot:
    # The market time is read BEFORE the klines: a candle that closes while they are being fetched then
    # counts as still open for every symbol (it is dropped everywhere, and the run scores the bar before
    # it), instead of being scored from klines fetched before it had finished for some symbols.
    now_ms = await clock.now_ms()
    symbols = await _universe(market, settings, request)
    progress.universe(len(symbols))
    klines, errors = await _fetch(
        market,
        settings.universe.category,
        symbols,
        request.timeframe,
        settings.kline_limit,
        concurrency,
        progress,
    )
    return _Snapshot(now_ms, symbols, klines, errors)


# -- scoring and storing ---------------------------------------------------------------------------


def _utc(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC)


def expires_at_ms(timeframe: str, bar_open_ms: int, ttl_bars: int) -> int:
    """When a signal on the bar opening at ``bar_open_ms`` expires: its close plus ``ttl_bars`` candles."""
    moment = candle_close_ms(timeframe, bar_open_ms)
    for _ in range(ttl_bars):
        moment = candle_close_ms(timeframe, moment)
    return moment


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def check_candidates(
    candidates: Sequence[Candidate], panel: CandlePanel
) -> tuple[list[Candidate], list[SymbolError]]:
    """Candidates the signals table will accept, and an error for each one it would refuse.

    One refused row would fail the whole batch insert, so levels are checked here first: finite,
    positive (a SHORT's ATR-based take-profit can fall below zero on a wild bar), on the panel's bar.
    """
    last_bar = int(panel.open_time_ms[-1])
    symbols = set(panel.symbols)
    good: list[Candidate] = []
    bad: list[SymbolError] = []
    seen: set[str] = set()
    for c in candidates:
        levels = (c.entry, c.stop_loss, c.take_profit)
        problem = None
        if c.symbol not in symbols or c.symbol in seen:
            problem = "the scorer returned a symbol that is not (or twice) in the panel"
        elif c.bar_time_ms != last_bar:
            problem = f"candidate is for bar {c.bar_time_ms}, not the panel's last bar {last_bar}"
        elif not all(_finite(v) and v > 0 for v in levels) or not (_finite(c.atr) and c.atr >= 0):
            problem = "entry, stop-loss, take-profit and ATR must be finite and positive"
        if problem:
            bad.append(SymbolError(c.symbol, "invalid_candidate", problem))
        else:
            seen.add(c.symbol)
            good.append(c)
    return good, bad


def stored_score(score: float) -> float:
    """The score as the table stores it (numeric(5, 2)); the threshold is judged on this value."""
    return round(score, 2)


def _signal_row(
    c: Candidate, *, category: str, timeframe: str, algorithm: str, ttl_bars: int
) -> dict[str, Any]:
    return {
        "symbol": c.symbol,
        "category": category,
        "timeframe": timeframe,
        "direction": c.direction,
        "algorithm": algorithm,
        "score": stored_score(c.score),
        "confidence": round(c.confidence, 4),
        "entry_price": c.entry,
        "stop_loss": c.stop_loss,
        "take_profit": c.take_profit,
        "atr": c.atr,
        # jsonb refuses NaN: a component the scorer could not compute is stored as null.
        "components": {k: (float(v) if _finite(v) else None) for k, v in c.components.items()},
        "bar_time": _utc(c.bar_time_ms).isoformat(),
        "expires_at": _utc(expires_at_ms(timeframe, c.bar_time_ms, ttl_bars)).isoformat(),
    }


_INSERT_SIGNALS = """
insert into signals (symbol, category, timeframe, direction, algorithm, score, confidence, entry_price,
                     stop_loss, take_profit, atr, components, bar_time, expires_at, status)
select r.symbol, r.category, r.timeframe, r.direction, r.algorithm, r.score, r.confidence, r.entry_price,
       r.stop_loss, r.take_profit, r.atr, r.components, r.bar_time, r.expires_at, 'new'
from jsonb_to_recordset(%s::jsonb) as r(
  symbol text, category text, timeframe text, direction text, algorithm text, score numeric,
  confidence numeric, entry_price numeric, stop_loss numeric, take_profit numeric, atr numeric,
  components jsonb, bar_time timestamptz, expires_at timestamptz)
on conflict on constraint signals_one_per_bar do nothing
returning id
"""


async def store_signals(db: Database, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Insert signal rows in one statement; returns the ids of rows that were new (not already there)."""
    if not rows:
        return []
    async with db.write(Caller.service()) as conn:
        cursor = await conn.execute(_INSERT_SIGNALS, (json.dumps(list(rows)),))
        return [str(row["id"]) for row in await cursor.fetchall()]


async def _open_runs(db: Database, timeframe: str, algorithms: Sequence[str], dry_run: bool) -> list[str]:
    """One 'running' scan_runs row per algorithm, in one transaction; ids in the algorithms' order."""
    ids: list[str] = []
    async with db.write(Caller.service()) as conn:
        for algorithm in algorithms:
            row = await (
                await conn.execute(
                    "insert into scan_runs (timeframe, algorithm, dry_run, status) "
                    "values (%s, %s, %s, 'running') returning id",
                    (timeframe, algorithm, dry_run),
                )
            ).fetchone()
            assert row is not None
            ids.append(str(row["id"]))
    return ids


async def _close_run(db: Database, run_id: str, result: ScanResult) -> None:
    async with db.write(Caller.service()) as conn:
        await conn.execute(
            "update scan_runs set status = %s, symbols_requested = %s, symbols_scanned = %s, "
            "candidates = %s, signals_created = %s, errors = %s::jsonb, finished_at = now(), "
            "duration_ms = %s, bar_time = %s where id = %s",
            (
                result.status,
                result.symbols_requested,
                result.symbols_scanned,
                result.candidates,
                result.signals_created,
                json.dumps([e.as_json() for e in result.errors]),
                result.duration_ms,
                result.bar_time,
                run_id,
            ),
        )


def run_status(scanned: int, errors: int) -> RunStatus:
    """``failed`` when nothing was scored, ``partial`` with errors, else ``succeeded``."""
    if scanned == 0:
        return "failed"
    return "partial" if errors else "succeeded"


@dataclass(frozen=True, slots=True)
class _Scored:
    candidates: int
    qualified: list[dict[str, Any]]
    errors: list[SymbolError]


async def _score(
    scorer: Scorer,
    algorithm: str,
    built: PanelBuild,
    settings: ScanSettings,
    timeframe: str,
    threshold: float,
) -> _Scored:
    if built.panel is None:
        return _Scored(0, [], [])
    # One vectorized call for every symbol; off the event loop, since it is CPU work (numba, numpy).
    candidates = await asyncio.to_thread(scorer, algorithm, built.panel)
    good, bad = check_candidates(candidates, built.panel)
    rows = [
        _signal_row(
            c,
            category=settings.universe.category,
            timeframe=timeframe,
            algorithm=algorithm,
            ttl_bars=settings.signal_ttl_bars,
        )
        for c in good
        if stored_score(c.score) >= threshold
    ]
    return _Scored(len(candidates), rows, bad)


async def run_scans(
    requests: Sequence[ScanRequest],
    *,
    db: Database,
    market: MarketDataClient,
    clock: MarketClock,
    settings: ScanSettings,
    scorer: Scorer | None = None,
    progress: ScanProgress | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[ScanResult]:
    """Scan one timeframe for one or more algorithms, fetching the market data once.

    ``requests`` must agree on everything but ``algorithm`` (one ``scan_runs`` row each). ``scorer``
    defaults to ``lib.scoring.score``; tests may pass their own. Raises what fails the whole run, after
    recording it as ``failed``.
    """
    if not requests:
        return []
    first = requests[0]
    if len({r.algorithm for r in requests}) != len(requests) or any(
        (r.timeframe, r.symbols, r.max_symbols, r.min_score, r.dry_run)
        != (first.timeframe, first.symbols, first.max_symbols, first.min_score, first.dry_run)
        for r in requests
    ):
        raise InvalidRequest("scans run together must differ only by algorithm, each at most once")
    if concurrency < 1:
        raise InvalidRequest("concurrency must be at least 1")
    score_fn = scorer or default_scorer

    def threshold_of(request: ScanRequest) -> float:
        return first.min_score if first.min_score is not None else settings.threshold_for(request.algorithm)

    started = time.perf_counter()
    run_ids = await _open_runs(db, first.timeframe, [r.algorithm for r in requests], first.dry_run)

    def result(request: ScanRequest, run_id: str, **counts: Any) -> ScanResult:
        values: dict[str, Any] = {
            "bar_time": None,
            "symbols_requested": 0,
            "symbols_scanned": 0,
            "candidates": 0,
            "qualified": 0,
            "signals_created": 0,
            "duplicates": 0,
            "signal_ids": (),
            "errors": (),
            "status": "failed",
        }
        values.update(counts)
        return ScanResult(
            run_id=run_id,
            timeframe=first.timeframe,
            algorithm=request.algorithm,
            dry_run=first.dry_run,
            threshold=threshold_of(request),
            duration_ms=round((time.perf_counter() - started) * 1000),
            **values,
        )

    async def fail_all(
        pending: Sequence[tuple[ScanRequest, str]],
        exc: BaseException,
        errors: Sequence[SymbolError] = (),
        **counts: Any,
    ) -> None:
        error = (
            SymbolError(None, exc.code, exc.message)
            if isinstance(exc, AitradexError)
            else SymbolError(None, "internal_error", type(exc).__name__)
        )
        for request, run_id in pending:
            failed = result(request, run_id, errors=(*errors, error), **counts)
            try:
                await _close_run(db, run_id, failed)
            except Exception as close_error:
                # The original failure is what the caller must see; this one is only logged.
                log_event(
                    logger,
                    "scan_run_not_recorded",
                    level=logging.ERROR,
                    run_id=run_id,
                    error_type=type(close_error).__name__,
                )
            _log_result(failed)

    try:
        snapshot = await _snapshot(market, clock, settings, first, concurrency, progress or _NoProgress())
        built = build_panel(snapshot.klines, first.timeframe, snapshot.now_ms, min_bars=MIN_BARS)
    except BaseException as exc:
        await asyncio.shield(fail_all(list(zip(requests, run_ids, strict=True)), exc))
        raise
    data_errors = [*snapshot.errors, *(SymbolError(p.symbol, p.code, p.message) for p in built.problems)]
    if not snapshot.requested:
        data_errors.append(SymbolError(None, "empty_universe", "no symbol passed the universe filters"))
    scanned = 0 if built.panel is None else len(built.panel.symbols)
    bar_ms = built.last_bar_ms
    common = {
        "bar_time": None if bar_ms is None else _utc(bar_ms),
        "symbols_requested": len(snapshot.requested),
        "symbols_scanned": scanned,
    }

    results: list[ScanResult] = []
    for index, (request, run_id) in enumerate(zip(requests, run_ids, strict=True)):
        try:
            scored = await _score(
                score_fn, request.algorithm, built, settings, first.timeframe, threshold_of(request)
            )
            ids = [] if first.dry_run else await store_signals(db, scored.qualified)
        except BaseException as exc:
            await asyncio.shield(
                fail_all(list(zip(requests, run_ids, strict=True))[index:], exc, data_errors, **common)
            )
            raise
        errors = (*data_errors, *scored.errors)
        done = result(
            request,
            run_id,
            status=run_status(scanned, len(errors)),
            candidates=scored.candidates,
            qualified=len(scored.qualified),
            signals_created=len(ids),
            duplicates=0 if first.dry_run else len(scored.qualified) - len(ids),
            signal_ids=tuple(ids),
            errors=errors,
            **common,
        )
        await _close_run(db, run_id, done)
        _log_result(done)
        results.append(done)
    return results


def _log_result(result: ScanResult) -> None:
    log_event(
        logger,
        "scan_finished",
        level=logging.INFO if result.status == "succeeded" else logging.WARNING,
        run_id=result.run_id,
        status=result.status,
        timeframe=result.timeframe,
        algorithm=result.algorithm,
        dry_run=result.dry_run,
        bar_time=result.bar_time,
        symbols_requested=result.symbols_requested,
        symbols_scanned=result.symbols_scanned,
        candidates=result.candidates,
        qualified=result.qualified,
        signals_created=result.signals_created,
        duplicates=result.duplicates,
        errors=len(result.errors),
        error_codes=sorted({e.code for e in result.errors}),
        duration_ms=result.duration_ms,
    )


# -- entry points ----------------------------------------------------------------------------------


async def scan_many(
    requests: Sequence[ScanRequest],
    *,
    db: Database,
    market_access: MarketAccess,
    settings: ScanSettings | None = None,
    environment: str | None = None,
    scorer: Scorer | None = None,
    progress: ScanProgress | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[ScanResult]:
    """:func:`run_scans` against the configured exchange environment (or ``environment``)."""
    settings = settings or await load_scan_settings(db)
    env = environment or settings.environment
    clock = market_clock_for(env, paper_url=market_access.paper_url)
    async with market_access.client(env) as market:
        return await run_scans(
            requests,
            db=db,
            market=market,
            clock=clock,
            settings=settings,
            scorer=scorer,
            progress=progress,
            concurrency=concurrency,
        )


async def scan(
    request: ScanRequest,
    *,
    db: Database,
    market_access: MarketAccess,
    settings: ScanSettings | None = None,
    environment: str | None = None,
    scorer: Scorer | None = None,
    progress: ScanProgress | None = None,
) -> ScanResult:
    """One scan (one algorithm) against the configured exchange environment: the function's entry point."""
    (result,) = await scan_many(
        [request],
        db=db,
        market_access=market_access,
        settings=settings,
        environment=environment,
        scorer=scorer,
        progress=progress,
    )
    return result


def scan_job(
    timeframe: str, *, db: Database, market_access: MarketAccess, scorer: Scorer | None = None
) -> Job:
    """A scheduler job: at each close of ``timeframe``, scan it with every ``scanner.algorithms``.

    Settings are read at each run, so a changed threshold or algorithm list applies from the next close.
    """

    async def run() -> None:
        settings = await load_scan_settings(db)
        requests = [ScanRequest(timeframe=timeframe, algorithm=a) for a in settings.algorithms]
        await scan_many(requests, db=db, market_access=market_access, settings=settings, scorer=scorer)

    return Job(name=f"scan:{timeframe}", schedule=CandleClose(timeframe), run=run)


async def build_scan_scheduler(services: Services, *, scorer: Scorer | None = None) -> Scheduler:
    """A scheduler with one scan job per ``scanner.timeframes``, on the configured exchange's market clock.

    Add other jobs (executor, order tracker) with :meth:`Scheduler.add`. Timeframes and the environment
    are read once here: changing them takes a restart.
    """
    settings = await load_scan_settings(services.db)
    market_access: MarketAccess = services.market
    clock = market_clock_for(settings.environment, paper_url=market_access.paper_url)
    jobs = [
        scan_job(tf, db=services.db, market_access=market_access, scorer=scorer) for tf in settings.timeframes
    ]
    return Scheduler(jobs, market_clock=clock)


async def scan_local(
    app_settings: AppSettings,
    requests: Sequence[ScanRequest],
    *,
    environment: str | None = None,
    progress: ScanProgress | None = None,
) -> list[ScanResult]:
    """Run scans in this process against the configured stack (what ``aitradex scan`` does).

    The database is the configured one; market data comes from ``exchange.environment`` (or
    ``environment``): on ``paper``, the paper exchange the local stack runs for this database. The rate
    limiter keeps to ``exchange.rate_limit_share``.
    """
    from lib.db.target import database_target
    from lib.exchange.access import MarketAccess
    from lib.exchange.rate_limit import RateLimiter
    from lib.local_state import read_services

    paper_url = read_services(app_settings.state_dir, app_settings.database.db_name).get("paper_exchange_url")
    async with Database(database_target(app_settings).app_url, max_size=4) as db:
        settings = await load_scan_settings(db)
        env = environment or settings.environment
        if env == "paper" and not paper_url:
            raise ConfigError(
                "no paper exchange is running for this database: start the stack (`aitradex up`, `make demo`)"
            )
        access = MarketAccess(
            paper_url=str(paper_url) if paper_url else None, limiter=RateLimiter(settings.rate_limit_share)
        )
        return await scan_many(
            requests, db=db, market_access=access, settings=settings, environment=env, progress=progress
        )


def format_summary(results: Sequence[ScanResult], *, max_errors: int = 20) -> str:
    """A plain-text table of scan results, then the distinct errors (at most ``max_errors``)."""
    header: tuple[object, ...] = ("timeframe", "algorithm", "status", "bar (UTC)", "symbols", "scanned")
    header += ("candidates", "qualified", "stored", "dupes", "errors", "ms")
    rows: list[tuple[object, ...]] = [header]
    for r in results:
        rows.append(
            (
                r.timeframe,
                r.algorithm,
                r.status + (" (dry run)" if r.dry_run else ""),
                r.bar_time.strftime("%Y-%m-%d %H:%M") if r.bar_time else "-",
                r.symbols_requested,
                r.symbols_scanned,
                r.candidates,
                f"{r.qualified} (>= {r.threshold:g})",
                r.signals_created,
                r.duplicates,
                len(r.errors),
                r.duration_ms,
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    errors = sorted({(e.symbol or "(run)", e.code, e.message) for r in results for e in r.errors})
    lines += [f"! {symbol}: {code}: {message}" for symbol, code, message in errors[:max_errors]]
    if len(errors) > max_errors:
        lines.append(f"! ... and {len(errors) - max_errors} more")
    return "\n".join(lines)
