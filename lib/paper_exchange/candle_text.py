"""Candles as Bybit's text, formatted once when the data is loaded, and exact sums of any window.

Every answer is text (Bybit's numbers-as-strings), and formatting a float through
``Decimal`` costs about a microsecond. So each symbol's candles are formatted once, when the data is
loaded (:class:`CandleText`): price and volume texts, each candle's turnover text, and exact integer prefix
sums of volume and turnover so that any window's total is one subtraction. None of it depends on the
replay time: the time bounds stay where they were (the callers' index ranges), so nothing precomputed can
leak a future candle. Every text is the one the ``Decimal`` code (:func:`lib.paper_exchange.numbers.fmt`
of :func:`~lib.paper_exchange.numbers.dec` values, 28-digit context) gives, byte for byte; where a sum
could be rounded by that context, the ``Decimal`` loop itself runs instead (:meth:`CandleText.sum_texts`).

A symbol's text may cover only its first candles and grow (:meth:`CandleText.extended`): months of
five-minute candles cost seconds and hundreds of megabytes to format, and a replay only ever reads up to
its replay time. Growing formats only the new candles and joins the exact sums, so the texts are the ones
a whole-file build gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, getcontext

import numpy as np
import numpy.typing as npt

from lib.core.candles import Candles
from lib.paper_exchange.numbers import dec, fmt

ObjectArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: A term that is zero has no last digit; this sentinel never lowers a window's minimum.
_NO_DIGIT = 1_000_000


def candle_text(value: float) -> str:
    """``fmt(dec(value))`` without the two ``Decimal`` round trips (same text, about 3x faster).

    ``repr`` is the shortest text that round-trips (what :func:`~lib.paper_exchange.numbers.dec` reads);
    it only has to lose its exponent and its ``.0``: repr never writes other trailing zeros.
    """
    return _plain(repr(value))


def candle_texts(values: FloatArray) -> list[str]:
    """:func:`candle_text` of every value: one C-level ``repr`` of the whole list, then per-text fix-ups
    only where there is one to make (an exponent, a ``.0``, nan or inf)."""
    if values.size == 0:
        return []
    texts = repr(values.tolist())[1:-1].split(", ")
    # A positional repr ends in "0" only as ".0" (shortest texts carry no other trailing zero).
    return [text if "e" not in text and text[-1] not in "0nf" else _plain(text) for text in texts]


def _plain(text: str) -> str:
    """``fmt(Decimal(text))`` of a float's ``repr`` ``text``."""
    if text.endswith(".0"):
        text = text[:-2]
        return "0" if text == "-0" else text  # fmt writes every zero, -0.0 included, as "0"
    if "e" not in text:
        return text if text[-1] not in "nf" else fmt(Decimal(text))  # nan, inf: the Decimal spelling
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction  # one non-zero digit before the point, no trailing zeros after it
    point = len(whole) + int(exponent)
    if point <= 0:
        return sign + "0." + "0" * -point + digits
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return sign + digits[:point] + "." + digits[point:]


def scaled_text(units: int, scale: int) -> str:
    """``fmt`` of the non-negative decimal ``units * 10**-scale`` (``scale >= 0``)."""
    return _point(str(units), scale)


def _point(digits: str, scale: int) -> str:
    """``digits`` (a non-negative integer's text) with a decimal point ``scale`` digits from the right,
    as ``fmt`` writes it."""
    if scale == 0 or digits == "0":
        return digits
    if len(digits) <= scale:
        digits = "0" * (scale - len(digits) + 1) + digits
    whole, fraction = digits[:-scale], digits[-scale:].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


@dataclass(frozen=True, slots=True)
class DecimalSums:
    """Exact running totals of a column of non-negative decimals, as integers in units of ``10**-scale``.

    ``prefix[i]`` is the sum of the first ``i`` terms; ``last_digit[i]`` is (a lower bound of) the exponent
    of term ``i``'s last non-zero digit, ``_NO_DIGIT`` for a zero term.
    """

    prefix: ObjectArray
    scale: int
    last_digit: IntArray  # one entry per term, plus a trailing _NO_DIGIT so any window end is an index

    @classmethod
    def of(cls, units: Sequence[int], scale: int, last_digit: Sequence[int]) -> DecimalSums:
        """The running totals of ``units`` (terms in units of ``10**-scale``)."""
        prefix = np.empty(len(units) + 1, dtype=object)
        prefix[:] = [0, *itertools.accumulate(units)]
        return cls(prefix, scale, np.array([*last_digit, _NO_DIGIT], dtype=np.int64))

    def joined(self, after: DecimalSums) -> DecimalSums:
        """The running totals of this column followed by ``after``'s terms (at the larger scale)."""
        scale = max(self.scale, after.scale)
        head = self.prefix if self.scale == scale else self.prefix * 10 ** (scale - self.scale)
        tail = after.prefix[1:] if after.scale == scale else after.prefix[1:] * 10 ** (scale - after.scale)
        prefix = np.concatenate((head, tail + head[-1])) if tail.size else head
        return DecimalSums(prefix, scale, np.concatenate((self.last_digit[:-1], after.last_digit)))

    def texts(self, los: IntArray, his: IntArray) -> list[str | None]:
        """For each window ``[los[k], his[k])`` (sorted, disjoint), ``fmt`` of its sum as a ``Decimal``
        loop adds the terms, or ``None`` where that loop might round (the caller then runs the loop)."""
        totals = (self.prefix[his] - self.prefix[los]).tolist()
        bounds = np.empty(2 * los.size, dtype=np.int64)
        bounds[0::2] = los
        bounds[1::2] = his
        # Even segments are the windows; an empty window gets a wrong minimum, but its total is 0.
        lowest = np.minimum.reduceat(self.last_digit, bounds)[0::2].tolist()
        return [
            "0" if total == 0 else self._checked(total, low)
            for total, low in zip(totals, lowest, strict=True)
        ]

    def _checked(self, total: int, lowest: int) -> str | None:
        # Why this is enough: every term is >= 0, so each partial sum of the loop lies between 0 and the
        # total, and is a multiple of 10**lowest. If the total has at most `prec` digits from its leading
        # digit down to 10**lowest, no partial sum (and no term) has more: the 28-digit context never
        # rounds, and the loop's result is the exact total.
        if total >= 10 ** (getcontext().prec + self.scale + lowest):
            return None
        return scaled_text(total, self.scale)


def _decimal_units(texts: Sequence[str]) -> tuple[list[int], int, list[int]]:
    """Plain non-negative decimal texts as integers at their common scale, the scale, and each one's
    last-digit exponent (``_NO_DIGIT`` for zero)."""
    units = []
    decimals = []
    for text in texts:
        whole, _, fraction = text.partition(".")
        units.append(int(whole + fraction))
        decimals.append(len(fraction))
    scale = max(decimals, default=0)
    # fmt texts carry no trailing zero after the point; integers may end in zeros ("100"): count them.
    last_digit = [
        -d if d else (_NO_DIGIT if u == 0 else len(t) - len(t.rstrip("0")))
        for t, u, d in zip(texts, units, decimals, strict=True)
    ]
    powers = [10**k for k in range(scale + 1)]
    return [u * powers[scale - d] for u, d in zip(units, decimals, strict=True)], scale, last_digit


@dataclass(frozen=True, slots=True)
class CandleText:
    """One symbol's candles as Bybit text, formatted once at load (see the module docstring).

    ``turnover[i]`` is candle ``i``'s ``volume * close`` as the ``Decimal`` context computes it.
    ``volume_sums``/``turnover_sums`` are ``None`` when a volume or close is negative or not finite: the
    exactness argument of :class:`DecimalSums` needs non-negative terms, so such a symbol always sums
    with ``Decimal``. ``ordered`` says no price is NaN: then floats compare as their decimals do (each
    decimal is its float's shortest text), and highs and lows can be found on the floats; with a NaN the
    ``Decimal`` comparisons must run (and fail as they always did).
    """

    candles: Candles
    open: ObjectArray
    high: ObjectArray
    low: ObjectArray
    close: ObjectArray
    volume: ObjectArray
    turnover: ObjectArray
    volume_sums: DecimalSums | None
    turnover_sums: DecimalSums | None
    ordered: bool

    @classmethod
    def build(cls, candles: Candles) -> CandleText:
        """Format every candle of ``candles``."""
        n = len(candles)
        prices = np.concatenate((candles.open, candles.high, candles.low, candles.close))
        # Closes reopen the next candle and highs/lows repeat: format each distinct value once.
        unique, inverse = np.unique(prices, return_inverse=True)
        unique_texts = candle_texts(unique)
        table = np.empty(len(unique_texts), dtype=object)
        table[:] = unique_texts
        columns = table[inverse.reshape(-1)].reshape(4, n)
        volume = np.empty(n, dtype=object)
        volume[:] = candle_texts(candles.volume)
        exact = bool(
            np.all(np.isfinite(candles.volume))
            and np.all(candles.volume >= 0)
            and np.all(np.isfinite(candles.close))
            and np.all(candles.close >= 0)
        )
        volume_sums = turnover_sums = None
        turnover = np.empty(n, dtype=object)
        if exact:
            volume_units, volume_scale, volume_digits = _decimal_units(volume.tolist())
            # Each distinct close once (opens, highs and lows may be anything, even not finite).
            close_ids, close_index = np.unique(inverse.reshape(-1)[3 * n :], return_inverse=True)
            close_units, close_scale, close_digits = _decimal_units([unique_texts[i] for i in close_ids])
            turnover_scale = volume_scale + close_scale
            turnover_units = []
            turnover_digits = []
            for v_units, v_digit, c in zip(volume_units, volume_digits, close_index.tolist(), strict=True):
                turnover_units.append(v_units * close_units[c])
                # The product's last digit is at least this low (a lower bound is all DecimalSums needs).
                turnover_digits.append(_NO_DIGIT if v_units == 0 else v_digit + close_digits[c])
            turnover[:] = [
                _product_text(units, turnover_scale, volume[k], columns[3, k])
                for k, units in enumerate(turnover_units)
            ]
            volume_sums = DecimalSums.of(volume_units, volume_scale, volume_digits)
            turnover_sums = DecimalSums.of(turnover_units, turnover_scale, turnover_digits)
        else:
            turnover[:] = [
                fmt(Decimal(0) + dec(v) * dec(c))
                for v, c in zip(candles.volume.tolist(), candles.close.tolist(), strict=True)
            ]
        return cls(
            candles=candles,
            open=columns[0],
            high=columns[1],
            low=columns[2],
            close=columns[3],
            volume=volume,
            turnover=turnover,
            volume_sums=volume_sums,
            turnover_sums=turnover_sums,
            ordered=not bool(np.isnan(prices).any()),
        )

    def extended(self, series: Candles, upto: int) -> CandleText:
        """This text grown to the first ``upto`` candles of ``series``, the whole series it is a prefix of.

        Only the new candles are formatted; the exact sums are joined (:meth:`DecimalSums.joined`). A
        new object, so a reader holding this one is never disturbed.
        """
        done = len(self.candles)
        if upto <= done:
            return self
        tail = CandleText.build(candles_between(series, done, upto))
        return CandleText(
            candles=candles_between(series, 0, upto),
            open=np.concatenate((self.open, tail.open)),
            high=np.concatenate((self.high, tail.high)),
            low=np.concatenate((self.low, tail.low)),
            close=np.concatenate((self.close, tail.close)),
            volume=np.concatenate((self.volume, tail.volume)),
            turnover=np.concatenate((self.turnover, tail.turnover)),
            volume_sums=_joined(self.volume_sums, tail.volume_sums),
            turnover_sums=_joined(self.turnover_sums, tail.turnover_sums),
            ordered=self.ordered and tail.ordered,
        )

    @staticmethod
    def texts_of(prices: FloatArray) -> list[str]:
        """The texts of prices (aggregated highs and lows): the same texts the candles' columns hold."""
        return candle_texts(prices)

    def sum_texts(self, los: IntArray, his: IntArray) -> tuple[list[str], list[str]]:
        """Summed volume and turnover texts of candle windows ``[los[k], his[k])`` (sorted, disjoint).

        Each equals ``fmt`` of a ``Decimal(0)``-started loop adding ``dec(volume)`` (and
        ``dec(volume) * dec(close)``) over the window, which is what runs when the exact sums cannot vouch
        for its result.
        """
        if los.size == 0:
            return [], []
        if bool(np.all(his - los == 1)):
            # One candle: Decimal(0) + one term is that term (at most 17 digits, never rounded).
            return self.volume[los].tolist(), self.turnover[los].tolist()
        volumes: list[str] = []
        turnovers: list[str] = []
        exact = zip(
            self._texts(self.volume_sums, self.volume, los, his),
            self._texts(self.turnover_sums, self.turnover, los, his),
            strict=True,
        )
        for k, (volume, turnover) in enumerate(exact):
            if volume is None or turnover is None:
                volume, turnover = decimal_sums(self.candles, int(los[k]), int(his[k]))
            volumes.append(volume)
            turnovers.append(turnover)
        return volumes, turnovers

    @staticmethod
    def _texts(
        sums: DecimalSums | None, singles: ObjectArray, los: IntArray, his: IntArray
    ) -> list[str | None]:
        if sums is None:
            return [None] * int(los.size)
        texts = sums.texts(los, his)
        for k in np.flatnonzero(his - los <= 1).tolist():
            texts[k] = singles[los[k]] if his[k] > los[k] else "0"
        return texts


def _product_text(units: int, scale: int, volume: str, close: str) -> str:
    """``fmt(Decimal(0) + Decimal(volume) * Decimal(close))`` given the exact product in ``units``."""
    digits = str(units)
    if len(digits.rstrip("0")) <= getcontext().prec:
        return _point(digits, scale)
    return fmt(Decimal(0) + Decimal(volume) * Decimal(close))  # the context rounds this product


def _joined(head: DecimalSums | None, tail: DecimalSums | None) -> DecimalSums | None:
    """Both columns' sums joined, or ``None`` if either part must sum with ``Decimal``."""
    return None if head is None or tail is None else head.joined(tail)


def candles_between(series: Candles, lo: int, hi: int) -> Candles:
    """Candles ``[lo, hi)`` of ``series`` (views of its arrays, nothing copied)."""
    return Candles(
        symbol=series.symbol,
        open_time_ms=series.open_time_ms[lo:hi],
        open=series.open[lo:hi],
        high=series.high[lo:hi],
        low=series.low[lo:hi],
        close=series.close[lo:hi],
        volume=series.volume[lo:hi],
    )


def decimal_sums(candles: Candles, lo: int, hi: int) -> tuple[str, str]:
    """Volume and turnover of candles ``[lo, hi)`` summed in ``Decimal`` (the reference computation)."""
    volume = Decimal(0)
    turnover = Decimal(0)
    for index in range(lo, hi):
        candle_volume = dec(candles.volume[index])
        volume += candle_volume
        turnover += candle_volume * dec(candles.close[index])
    return fmt(volume), fmt(turnover)
