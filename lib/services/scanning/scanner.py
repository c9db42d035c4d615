"""The scanner: market data -> one vectorized scoring call -> signals, and a ``scan_runs`` row per run.

One scan of a timeframe:

1. reads the market time (the paper exchange's replay clock, or wall time) and the universe: the
   request's ``symbols``, or ``/v5/market/tickers`` (+ instruments-info) filtered by ``scanner.universe``;
2. fetches ``scanner.kline_limit`` klines per symbol concurrently, every request through the process's
   shared rate limiter (:mod:`lib.services.scanning.snapshot`);
3. builds one :class:`~lib.core.candles.CandlePanel` of closed bars (``lib.core.panel``: the candle in
   progress is dropped, holes are never patched) and scores every symbol in ONE call of the scorer;
4. stores candidates scoring at least the threshold (``scanner.threshold``, or the request's
   ``min_score``) as ``new`` signals, ``insert ... on conflict do nothing`` on (symbol, timeframe,
   algorithm, direction, bar_time), so running the same scan twice on the same bar adds nothing
   (:mod:`lib.stores.signals`);
5. records the run in ``scan_runs`` (inserted as ``running`` first, so a crash leaves a trace;
   :mod:`lib.stores.scan_runs`).

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
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from lib.core.candles import Candidate, CandlePanel
from lib.core.panel import PanelBuild, build_panel
from lib.core.signal import NewSignal
from lib.core.vocabulary import Algorithm, Category, Timeframe
from lib.db.session import Database
from lib.errors import AitradexError, InvalidRequest
from lib.exchange.market import MarketDataClient
from lib.exchange.market_clock import MarketClock, market_clock_for
from lib.log import log_event
from lib.services.scanning.candidates import check_candidates, new_signal, stored_score, utc
from lib.services.scanning.models import (
    NoProgress,
    ScanProgress,
    ScanRequest,
    ScanResult,
    SymbolError,
    run_status,
)
from lib.services.scanning.settings import MIN_BARS, ScanSettings, load_scan_settings
from lib.services.scanning.snapshot import DEFAULT_CONCURRENCY, take_snapshot
from lib.stores import scan_runs
from lib.stores import signals as signals_store

if TYPE_CHECKING:
    from lib.exchange.access import MarketAccess

logger = logging.getLogger("aitradex.scanner")

Scorer = Callable[[str, CandlePanel], Sequence[Candidate]]


def default_scorer(algorithm: str, panel: CandlePanel) -> Sequence[Candidate]:
    """``lib.scoring.score``, imported on first use (it loads numba kernels and model weights)."""
    from lib.scoring import score

    return score(algorithm, panel)


async def _close_run(db: Database, run_id: str, result: ScanResult) -> None:
    await scan_runs.close_run(
        db,
        run_id,
        status=result.status,
        symbols_requested=result.symbols_requested,
        symbols_scanned=result.symbols_scanned,
        candidates=result.candidates,
        signals_created=result.signals_created,
        errors=[e.as_json() for e in result.errors],
        duration_ms=result.duration_ms,
        bar_time=result.bar_time,
    )


@dataclass(frozen=True, slots=True)
class _Scored:
    candidates: int
    qualified: list[NewSignal]
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
        new_signal(
            c,
            # Checked against these vocabularies already, by ScanRequest and UniverseFilter.
            category=cast(Category, settings.universe.category),
            timeframe=cast(Timeframe, timeframe),
            algorithm=cast(Algorithm, algorithm),
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
    host_id: str | None = None,
) -> list[ScanResult]:
    """Scan one timeframe for one or more algorithms, fetching the market data once.

    ``requests`` must agree on everything but ``algorithm`` (one ``scan_runs`` row each). ``scorer``
    defaults to ``lib.scoring.score``; tests may pass their own. ``host_id`` is recorded on the runs
    (a scanner host's share). Raises what fails the whole run, after recording it as ``failed``.
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
    algorithms = [r.algorithm for r in requests]
    run_ids = await scan_runs.open_runs(db, first.timeframe, algorithms, first.dry_run, host_id)

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
        snapshot = await take_snapshot(market, clock, settings, first, concurrency, progress or NoProgress())
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
        "bar_time": None if bar_ms is None else utc(bar_ms),
        "symbols_requested": len(snapshot.requested),
        "symbols_scanned": scanned,
    }

    results: list[ScanResult] = []
    for index, (request, run_id) in enumerate(zip(requests, run_ids, strict=True)):
        try:
            scored = await _score(
                score_fn, request.algorithm, built, settings, first.timeframe, threshold_of(request)
            )
            ids = [] if first.dry_run else await signals_store.insert_new(db, scored.qualified)
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
