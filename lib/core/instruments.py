"""Instrument filters, order normalization and symbol suggestions: pure code, no I/O.

An order for a Bybit instrument must respect its filters: the quantity is a multiple of ``qty_step``
between ``min_qty`` and ``max_qty``, the price a multiple of ``tick_size``, the notional (qty x price)
at least ``min_notional``, and the instrument must be ``Trading``. Everything here is
:class:`~decimal.Decimal`: a binary float would put a price one tick off.

Rounding directions, and why:

- quantities always round DOWN (:func:`normalize_qty`): rounding up would trade more than was sized,
  so more risk and more margin than the user allowed;
- prices round as their use demands (:func:`normalize_price`, ``rounding``): ``nearest`` for an entry
  or a reference price; ``down`` for a LONG's stop-loss and a SHORT's take-profit, ``up`` for a SHORT's
  stop-loss and a LONG's take-profit, i.e. protective and target levels round AWAY from the entry, so
  rounding never moves a level across the entry and never shrinks the stop distance a size was computed
  on (:func:`lib.core.sizing.normalize_levels` applies exactly this).

All arithmetic runs in a 60-digit context, so for any realistic filter (ticks down to 1e-18, quantities
up to 1e15, the bounds :class:`InstrumentFilters` enforces) quotients and products are exact, not
rounded at Python's default 28 digits.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Literal

TRADING = "Trading"

Rounding = Literal["down", "up", "nearest"]

ViolationCode = Literal[
    "not_trading",
    "non_positive_qty",
    "qty_not_on_step",
    "below_min_qty",
    "above_max_qty",
    "non_positive_price",
    "price_not_on_tick",
    "below_min_notional",
]

_ROUNDING_MODES: dict[str, str] = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_UP}
# Wide enough that qty/step, qty*price and friends are exact for any realistic instrument.
EXACT = Context(prec=60)
#: Bounds on what an exchange may publish as filters: quantities and values up to 1e30, ticks and steps
#: down to 1e-18. Within them (and prices up to 1e15, which sizing enforces) every quotient and product
#: here stays exact in :data:`EXACT` and far from Decimal's overflow; a listing outside them is refused,
#: not traded.
MAX_FILTER = Decimal("1e30")
MIN_UNIT = Decimal("1e-18")

# Quote coins recognised when splitting a symbol into base and quote, longest first so USDT wins
# over USD. Bybit's linear perpetuals also end in PERP (USDC-settled) or carry dated suffixes.
_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "PERP", "USDE", "USD", "BTC", "ETH", "EUR", "DAI", "BRL", "TRY")
_NOT_SYMBOL_CHARS = re.compile(r"[^A-Z0-9]")
# Below this combined score a symbol is not offered as a suggestion: it is only superficially alike.
_MIN_SUGGESTION_SCORE = 0.6
_SAME_BASE_BONUS = 0.3
_PREFIX_BONUS = 0.15


def _finite(value: Decimal) -> bool:
    return value.is_finite()


@dataclass(frozen=True, slots=True)
class InstrumentFilters:
    """The rules an order for one symbol must follow (Bybit's instruments-info, as Decimals).

    ``qty_step`` is ``qtyStep`` (contracts) or ``basePrecision`` (spot); ``min_notional`` is
    ``minNotionalValue`` (linear) or ``minOrderAmt`` (spot), zero where Bybit publishes none.
    ``max_leverage`` is ``leverageFilter.maxLeverage`` (None where Bybit publishes none, as for spot).
    Construction refuses filters no order could satisfy (non-positive tick or step, max below min).
    """

    symbol: str
    category: str
    status: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_leverage: Decimal | None = None

    def __post_init__(self) -> None:
        numbers = (self.tick_size, self.qty_step, self.min_qty, self.max_qty, self.min_notional)
        if not all(_finite(n) and abs(n) <= MAX_FILTER for n in numbers):
            raise ValueError(f"{self.symbol}: filters must be finite numbers of at most {fmt(MAX_FILTER)}")
        if self.tick_size < MIN_UNIT or self.qty_step < MIN_UNIT:
            raise ValueError(f"{self.symbol}: tick size and qty step must be at least {MIN_UNIT}")
        if self.min_qty < 0 or self.min_notional < 0 or self.max_qty < self.min_qty:
            raise ValueError(f"{self.symbol}: need 0 <= min_qty <= max_qty and min_notional >= 0")
        if self.max_leverage is not None and not (_finite(self.max_leverage) and self.max_leverage >= 1):
            raise ValueError(f"{self.symbol}: the maximum leverage must be a finite number of at least 1")

    @property
    def is_trading(self) -> bool:
        """Whether the exchange accepts new orders for this symbol now (status ``Trading``)."""
        return self.status == TRADING


@dataclass(frozen=True, slots=True)
class Violation:
    """One filter an order breaks: a stable ``code``, a sentence, the limit and the offending value."""

    code: ViolationCode
    message: str
    limit: Decimal | None = None
    actual: Decimal | None = None


def _to_multiple(value: Decimal, unit: Decimal, rounding: str) -> Decimal:
    """``value`` rounded to a multiple of ``unit``, written with ``unit``'s decimals."""
    if not value.is_finite():
        raise ValueError(f"cannot normalize {value}")
    with localcontext(EXACT):
        steps = (value / unit).to_integral_value(rounding=rounding)
        result = steps * unit
        # Quantize to the unit's exponent so 3 steps of 0.001 read 0.003 (not 3E-3); units above one
        # (a step of 100) keep their integral form.
        exponent = unit.as_tuple().exponent
        if isinstance(exponent, int) and exponent <= 0:
            result = result.quantize(unit)
        return result


def on_multiple(value: Decimal, unit: Decimal) -> bool:
    """Whether ``value`` is an exact multiple of ``unit``."""
    with localcontext(EXACT):
        return value % unit == 0


def normalize_qty(qty: Decimal, filters: InstrumentFilters) -> Decimal:
    """``qty`` rounded DOWN to a multiple of the qty step: never more than was asked for.

    Raises ValueError for a negative or non-finite quantity (a caller's bug, not an order to refuse).
    """
    if not qty.is_finite() or qty < 0:
        raise ValueError(f"quantity must be a finite number, not negative: got {qty}")
    return _to_multiple(qty, filters.qty_step, ROUND_FLOOR)


def normalize_price(price: Decimal, filters: InstrumentFilters, rounding: Rounding = "nearest") -> Decimal:
    """``price`` rounded to a multiple of the tick size.

    ``rounding``: ``nearest`` (half up) for entries and reference prices; ``down`` for a LONG's stop-loss
    or a SHORT's take-profit; ``up`` for a SHORT's stop-loss or a LONG's take-profit (see the module
    docstring: levels round away from the entry). Raises ValueError for a negative or non-finite price.
    """
    if not price.is_finite() or price < 0:
        raise ValueError(f"price must be a finite number, not negative: got {price}")
    return _to_multiple(price, filters.tick_size, _ROUNDING_MODES[rounding])


def status_violation(filters: InstrumentFilters) -> Violation | None:
    """``not_trading`` when the symbol takes no new orders (any status but ``Trading``), else None."""
    if filters.is_trading:
        return None
    return Violation(
        "not_trading", f"{filters.symbol} is {filters.status}, not {TRADING}: no new orders are accepted"
    )


def validate_order(qty: Decimal, price: Decimal | None, filters: InstrumentFilters) -> list[Violation]:
    """Every filter the order ``qty`` at ``price`` breaks, as given (nothing is rounded first).

    ``price`` may be None (a market order without a reference price): then the tick and the minimum
    notional cannot be checked and are not reported. An empty list means the exchange's filters accept it.
    Raises ValueError for a non-finite quantity or price (a caller's bug).
    """
    if not qty.is_finite() or (price is not None and not price.is_finite()):
        raise ValueError(f"quantity and price must be finite numbers, got {qty} and {price}")
    f = filters
    status = status_violation(f)
    violations: list[Violation] = [] if status is None else [status]
    with localcontext(EXACT):
        if qty <= 0:
            # Reported with the minimum below: a quantity that rounded down to zero is too small.
            violations.append(Violation("non_positive_qty", "quantity must be positive", None, qty))
        elif not on_multiple(qty, f.qty_step):
            violations.append(
                Violation(
                    "qty_not_on_step",
                    f"quantity must be a multiple of the qty step {fmt(f.qty_step)}",
                    f.qty_step,
                    qty,
                )
            )
        if qty < f.min_qty:
            violations.append(
                Violation("below_min_qty", f"quantity is below the minimum {fmt(f.min_qty)}", f.min_qty, qty)
            )
        if qty > f.max_qty:
            violations.append(
                Violation("above_max_qty", f"quantity is above the maximum {fmt(f.max_qty)}", f.max_qty, qty)
            )
        if price is None:
            return violations
        if price <= 0:
            violations.append(Violation("non_positive_price", "price must be positive", None, price))
            return violations
        if not on_multiple(price, f.tick_size):
            violations.append(
                Violation(
                    "price_not_on_tick",
                    f"price must be a multiple of the tick size {fmt(f.tick_size)}",
                    f.tick_size,
                    price,
                )
            )
        notional = qty * price
        if qty > 0 and notional < f.min_notional:
            violations.append(
                Violation(
                    "below_min_notional",
                    f"order value {fmt(notional)} is below the minimum {fmt(f.min_notional)}",
                    f.min_notional,
                    notional,
                )
            )
    return violations


def validate_market_order(
    qty: Decimal, reference_price: Decimal, filters: InstrumentFilters
) -> list[Violation]:
    """Every filter a market order of ``qty`` breaks, its value judged at ``reference_price``.

    A market order carries no price, so there is no tick to check (the reference is the price it was
    sized at: a signal's entry, or the last traded price, which need not lie on the tick). The status,
    the qty step, the minimum and maximum quantity and the minimum notional are checked. Both the
    executor's sizing and a manual trade use this one check. Raises ValueError for a non-finite
    quantity or price (a caller's bug).
    """
    if not reference_price.is_finite():
        raise ValueError(f"the reference price must be a finite number, got {reference_price}")
    violations = validate_order(qty, None, filters)
    with localcontext(EXACT):
        notional = qty * reference_price
        if qty > 0 and notional < filters.min_notional:
            violations.append(
                Violation(
                    "below_min_notional",
                    f"order value {fmt(notional)} is below the minimum {fmt(filters.min_notional)}",
                    filters.min_notional,
                    notional,
                )
            )
    return violations


def fmt(value: Decimal) -> str:
    """A Decimal in plain notation, as Bybit writes numbers (``0.000000001``, never ``1E-9``)."""
    return format(value, "f")


# -- suggestions -----------------------------------------------------------------------------------


def _clean(symbol: str) -> str:
    """Upper case, separators dropped: ``eth/btc`` and ``ETH-BTC`` both read ``ETHBTC``."""
    return _NOT_SYMBOL_CHARS.sub("", symbol.upper())


def split_symbol(symbol: str) -> tuple[str, str]:
    """``(base, quote)`` of a symbol by its quote suffix (``ETHUSDT`` -> ``ETH``, ``USDT``).

    A symbol with no known quote suffix is all base (``("ETHBTX", "")``).
    """
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def _base_of(symbol: str, bases: set[str]) -> str | None:
    """The base coin ``symbol`` most likely names: by its quote suffix, else the longest known base
    it starts with (``ETHBTX`` -> ``ETH`` when ETH is listed)."""
    base, quote = split_symbol(symbol)
    if quote and base in bases:
        return base
    starts = [b for b in bases if symbol.startswith(b)]
    if starts:
        return max(starts, key=lambda b: (len(b), b))
    return base if quote else None


def suggest(symbol: str, known: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` known symbols closest to ``symbol``, best first (deterministic).

    The score is difflib's similarity ratio, plus a bonus when both name the same base coin (``ETHUSD``
    finds ``ETHUSDT`` and ``ETHBTC`` before ``ETCBTC``) and a smaller one when one is a prefix of the
    other (``BTC`` finds ``BTCUSDT``). Symbols scoring below 0.6 are not offered: a suggestion
    should look like a typo's fix, not a random listing. Ties break alphabetically.
    """
    wanted = _clean(symbol)
    names = sorted({name for name in known if name})
    if not wanted or n <= 0 or not names:
        return []
    bases = {split_symbol(name)[0] for name in names}
    wanted_base = _base_of(wanted, bases)
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)
    scored: list[tuple[float, str]] = []
    for name in names:
        matcher.set_seq1(name)
        score = matcher.ratio()
        if wanted_base is not None and split_symbol(name)[0] == wanted_base:
            score += _SAME_BASE_BONUS
        if name.startswith(wanted) or wanted.startswith(name):
            score += _PREFIX_BONUS
        if score >= _MIN_SUGGESTION_SCORE:
            scored.append((-score, name))
    scored.sort()
    return [name for _, name in scored[:n]]
