"""Position sizing and level normalization: pure code, no I/O, Decimal throughout.

The rule (DESIGN.md section 7): risk a share of equity over the stop distance, capped by the maximum
position and by leverage, rounded DOWN to the instrument's qty step; below the minimum quantity or the
minimum notional, skip with a reason. Step by step, in :func:`size_order`:

1. parameters: equity must be positive (``no_equity``), risk % in (0, 100], max position and leverage
   positive (``invalid_parameters``); the instrument must be trading (``not_trading``);
2. levels: a LONG's stop-loss below its entry, a SHORT's above (``levels_invalid``; equal is
   ``zero_stop_distance``); then tick-normalized by :func:`normalize_levels`, which keeps that ordering;
3. ``risk_budget = equity * risk_pct / 100`` and ``qty = risk_budget / |entry - stop|``, both levels
   normalized. The stop rounds away from the entry, so the distance only widens and the budget holds;
4. caps: the leverage at most the instrument's ``max_leverage`` (:func:`usable_leverage`: the exchange
   refuses more), then ``qty * entry <= max_position_usd`` and ``qty * entry <= equity * leverage``; then
   ``qty <= max_qty``; then rounded down to the step. A division is the only inexact operation, so the
   result is checked against every cap with exact products and stepped down if one is exceeded;
5. ``qty < min_qty`` (or zero) skips with ``below_min_qty``, ``qty * entry < min_notional`` with
   ``below_min_notional``: the size is never raised to meet a minimum, which would risk more than allowed.
   This is :func:`lib.core.instruments.validate_market_order`, the check a manual market order gets too.

Every amount and price must be a finite number of at most :data:`MAX_MAGNITUDE` (``out_of_range``), so
nonsense from a wallet or an exchange is a skip with a reason, never an arithmetic exception.

Notional values use the normalized entry (what a limit order sends; a market order's reference price).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Literal

from lib.core.instruments import (
    EXACT,
    InstrumentFilters,
    Rounding,
    fmt,
    normalize_price,
    normalize_qty,
    validate_market_order,
)
from lib.core.vocabulary import Direction

SkipReason = Literal[
    "invalid_parameters",
    "no_equity",
    "not_trading",
    "zero_stop_distance",
    "levels_invalid",
    "below_min_qty",
    "below_min_notional",
    "out_of_range",
]
LevelProblem = Literal["zero_stop_distance", "levels_invalid"]
Cap = Literal["max_position", "leverage", "max_qty"]

_HUNDRED = Decimal(100)
#: The largest amount, price or quantity anything is sized from. Far above any real balance or price,
#: and far below where Decimal arithmetic overflows (a wallet or an exchange answering ``1e999999``
#: would otherwise make ``equity * leverage`` raise instead of skip).
MAX_MAGNITUDE = Decimal("1e15")


def within_magnitude(value: Decimal) -> bool:
    """Whether ``value`` is a finite number no larger than :data:`MAX_MAGNITUDE` either way."""
    return value.is_finite() and abs(value) <= MAX_MAGNITUDE


def out_of_range_message(name: str) -> str:
    """Why a value is refused, without the value (it may be a million digits long)."""
    return f"the {name} is not a finite number of at most {fmt(MAX_MAGNITUDE)}: nothing is sized from it"


@dataclass(frozen=True, slots=True)
class Levels:
    """Entry, stop-loss and (optional) take-profit, each a multiple of the tick size."""

    entry: Decimal
    stop_loss: Decimal
    take_profit: Decimal | None = None

    @property
    def stop_distance(self) -> Decimal:
        """``|entry - stop_loss|``: what one unit loses if the stop is hit (fees and slippage aside)."""
        return abs(self.entry - self.stop_loss)


def stop_loss_rounding(direction: Direction) -> Rounding:
    """How a stop-loss rounds to the tick: away from the entry (LONG down, SHORT up)."""
    return "down" if direction == "LONG" else "up"


def take_profit_rounding(direction: Direction) -> Rounding:
    """How a take-profit rounds to the tick: away from the entry (LONG up, SHORT down)."""
    return "up" if direction == "LONG" else "down"


def level_problem(
    direction: Direction, entry: Decimal, stop_loss: Decimal, take_profit: Decimal | None = None
) -> LevelProblem | None:
    """Why these levels cannot be traded, or None when they are well ordered.

    LONG needs ``stop_loss < entry < take_profit``, SHORT ``take_profit < entry < stop_loss``, every level
    positive and finite. A stop equal to the entry is ``zero_stop_distance``; anything else wrong is
    ``levels_invalid``.
    """
    given = [entry, stop_loss] + ([] if take_profit is None else [take_profit])
    if not all(level.is_finite() and level > 0 for level in given):
        return "levels_invalid"
    if stop_loss == entry:
        return "zero_stop_distance"
    sign = 1 if direction == "LONG" else -1
    if sign * (entry - stop_loss) < 0:
        return "levels_invalid"
    if take_profit is not None and sign * (take_profit - entry) <= 0:
        return "levels_invalid"
    return None


def normalize_levels(
    direction: Direction,
    entry: Decimal,
    stop_loss: Decimal,
    take_profit: Decimal | None,
    filters: InstrumentFilters,
) -> Levels | None:
    """The levels on the tick grid, ordering kept; None when the levels cannot be traded.

    The entry rounds to the nearest tick; the stop-loss and take-profit round away from the entry. Where
    rounding the entry brings it level with a stop (or target) less than a tick away, that level moves one
    more tick out, so a LONG's stop is always strictly below its entry and a SHORT's strictly above. None
    when :func:`level_problem` objects, or when keeping the order would need a price of zero or less.
    """
    if level_problem(direction, entry, stop_loss, take_profit) is not None:
        return None
    tick = filters.tick_size
    sign = Decimal(1) if direction == "LONG" else Decimal(-1)
    with localcontext(EXACT):
        entry_n = normalize_price(entry, filters, "nearest")
        stop_n = normalize_price(stop_loss, filters, stop_loss_rounding(direction))
        if sign * (entry_n - stop_n) <= 0:
            stop_n = entry_n - sign * tick
        target_n: Decimal | None = None
        if take_profit is not None:
            target_n = normalize_price(take_profit, filters, take_profit_rounding(direction))
            if sign * (target_n - entry_n) <= 0:
                target_n = entry_n + sign * tick
        levels = [entry_n, stop_n] + ([] if target_n is None else [target_n])
        if any(level <= 0 for level in levels):
            return None
    return Levels(entry=entry_n, stop_loss=stop_n, take_profit=target_n)


def usable_leverage(requested: int, filters: InstrumentFilters) -> int:
    """The leverage an order of this instrument can have: ``requested``, but at most the instrument's
    ``max_leverage`` (rounded down to a whole number, as preferences and orders hold it; at least 1).

    The exchange refuses to set a leverage above the maximum, so sending the preference as it is would
    fail the order ("leverage not set"); a lower leverage only needs more margin for the same size.
    """
    if filters.max_leverage is None:
        return requested
    cap = max(1, int(filters.max_leverage.to_integral_value(rounding=ROUND_FLOOR)))
    return min(requested, cap)


@dataclass(frozen=True, slots=True)
class SizingDecision:
    """The size of one order, or why there is none.

    ``ok`` is true exactly when ``skip_reason`` is None; a skipped decision has ``qty == 0`` and a
    machine-readable ``skip_reason`` plus a human ``message``. ``levels`` are the tick-normalized levels
    to send (None when the levels themselves were the problem). ``risk_amount`` is what hitting the stop
    would lose (``qty * stop distance``, fees aside); ``capped_by`` names the caps that bound the size.
    ``leverage`` is the leverage to set (:func:`usable_leverage` of ``requested_leverage``).
    """

    qty: Decimal
    skip_reason: SkipReason | None
    message: str
    levels: Levels | None = None
    notional: Decimal = Decimal(0)
    risk_budget: Decimal = Decimal(0)
    risk_amount: Decimal = Decimal(0)
    capped_by: tuple[Cap, ...] = field(default_factory=tuple)
    leverage: int = 1
    requested_leverage: int = 1

    @property
    def ok(self) -> bool:
        """Whether an order of ``qty`` should be placed."""
        return self.skip_reason is None

    @property
    def leverage_capped(self) -> bool:
        """Whether the instrument's maximum lowered the leverage asked for."""
        return self.leverage < self.requested_leverage


def _skip(
    reason: SkipReason,
    message: str,
    *,
    levels: Levels | None = None,
    risk_budget: Decimal = Decimal(0),
    capped_by: tuple[Cap, ...] = (),
) -> SizingDecision:
    return SizingDecision(
        qty=Decimal(0),
        skip_reason=reason,
        message=message,
        levels=levels,
        risk_budget=risk_budget,
        capped_by=capped_by,
    )


def _positive(value: Decimal) -> bool:
    return value.is_finite() and value > 0


def size_order(
    *,
    equity: Decimal,
    risk_pct: Decimal,
    entry: Decimal,
    stop_loss: Decimal,
    direction: Direction,
    max_position_usd: Decimal,
    leverage: int,
    filters: InstrumentFilters,
    take_profit: Decimal | None = None,
) -> SizingDecision:
    """Size one order by risk, capped by max position, leverage and max qty; see the module docstring.

    ``equity`` and ``max_position_usd`` are in the settle coin (USDT); ``risk_pct`` is a percentage
    (1 means 1 % of equity at risk). ``take_profit``, when given, is normalized with the other levels.
    ``leverage`` is the user's; the decision's is at most the instrument's maximum. Never raises for
    values a user, a signal, the wallet or the exchange can hold: every refusal is a skipped decision
    (a finite amount or price above :data:`MAX_MAGNITUDE` is ``out_of_range``).
    """
    if not (
        equity.is_finite()
        and _positive(risk_pct)
        and risk_pct <= _HUNDRED
        and _positive(max_position_usd)
        and leverage > 0
    ):
        return _skip(
            "invalid_parameters",
            "equity must be finite, risk % in (0, 100], max position and leverage positive",
        )
    amounts = {"equity": equity, "max position": max_position_usd, "entry": entry, "stop-loss": stop_loss}
    if take_profit is not None:
        amounts["take-profit"] = take_profit
    for name, value in amounts.items():
        if value.is_finite() and abs(value) > MAX_MAGNITUDE:
            return _skip("out_of_range", out_of_range_message(name))
    used_leverage = usable_leverage(leverage, filters)
    lev = Decimal(used_leverage)
    if equity <= 0:
        return _skip("no_equity", f"equity is {equity}: nothing to size from")
    if not filters.is_trading:
        return _skip("not_trading", f"{filters.symbol} is {filters.status}, not Trading")
    problem = level_problem(direction, entry, stop_loss, take_profit)
    if problem == "zero_stop_distance":
        return _skip(problem, "the stop-loss equals the entry: risk per unit would be zero")
    levels = normalize_levels(direction, entry, stop_loss, take_profit, filters)
    if problem is not None or levels is None:
        side = "below" if direction == "LONG" else "above"
        return _skip("levels_invalid", f"a {direction} needs positive levels with the stop-loss {side} entry")

    with localcontext(EXACT):
        price = levels.entry
        distance = levels.stop_distance
        risk_budget = equity * risk_pct / _HUNDRED
        by_risk = risk_budget / distance
        limits: dict[Cap, Decimal] = {
            "max_position": max_position_usd / price,
            "leverage": equity * lev / price,
            "max_qty": filters.max_qty,
        }
        qty = by_risk
        for limit in limits.values():
            qty = min(qty, limit)
        capped_by = tuple(cap for cap, limit in limits.items() if limit <= by_risk and limit == qty)
        qty = normalize_qty(qty, filters)
        cap_notional = min(max_position_usd, equity * lev)
        # The divisions above round at 60 digits; these exact products decide.
        while qty > 0 and (
            qty * distance > risk_budget or qty * price > cap_notional or qty > filters.max_qty
        ):
            qty -= filters.qty_step
        notional = qty * price
        risk_amount = qty * distance
        # The same check a manual market order gets (one validation for both paths).
        violations = {v.code for v in validate_market_order(qty, price, filters)}
        if violations & {"non_positive_qty", "below_min_qty"}:
            return _skip(
                "below_min_qty",
                f"the sized quantity {fmt(qty)} is below the minimum {fmt(filters.min_qty)} "
                f"of {filters.symbol}",
                levels=levels,
                risk_budget=risk_budget,
                capped_by=capped_by,
            )
        if "below_min_notional" in violations:
            return _skip(
                "below_min_notional",
                f"the order value {fmt(notional)} is below the minimum {fmt(filters.min_notional)} "
                f"of {filters.symbol}",
                levels=levels,
                risk_budget=risk_budget,
                capped_by=capped_by,
            )
    return SizingDecision(
        qty=qty,
        skip_reason=None,
        message=f"{fmt(qty)} {filters.symbol} risking {fmt(risk_amount)} of {fmt(risk_budget)}",
        levels=levels,
        notional=notional,
        risk_budget=risk_budget,
        risk_amount=risk_amount,
        capped_by=capped_by,
        leverage=used_leverage,
        requested_leverage=leverage,
    )
