"""The matching core: accounts, orders, positions and wallets, moved by orders and by replayed candles.

Pure state transitions over :mod:`lib.paper_exchange.models` (no HTTP, no files, no wall clock): every
method takes the replay time it acts at. One class of ~482 lines on purpose: every transition reads and
writes the same accounts, orders and positions, and the rules that need none of it (filters, fills,
triggers) already live in their own modules (``rules``, ``fills``, ``matching``). Rejections are
:class:`lib.errors.ExchangeRejected` carrying Bybit's retCode and message.

Model, kept deliberately small:

- linear contracts, one-way mode (positionIdx 0), settled in USDT; realised P&L and fees go to the USDT
  wallet at once (every fill pays its fee there: taker on market and crossing orders and on TP/SL
  closes, maker on resting limits); no funding, no liquidation (a losing position can take the
  balance below zero);
- spot trades move the base coin and the USDT wallet (every replayed pair is USDT-quoted);
- orders fill whole, never partially; market orders and crossing limit orders fill at the replay price
  as taker, resting limit orders fill on a later candle as maker (see :mod:`lib.paper_exchange.matching`);
- a take-profit / stop-loss attached to a linear order is set on the position when the order fills, and
  is checked on every candle that completes afterwards, before resting limit orders of that candle.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from lib.errors import ExchangeRejected, InvalidRequest
from lib.exchange.bybit import (
    DUPLICATE_ORDER_LINK_ID,
    LEVERAGE_NOT_MODIFIED,
    ORDER_NOT_EXISTS,
    REDUCE_ONLY_NOT_SATISFIED,
)
from lib.paper_exchange.fills import apply_linear_fill, apply_spot_fill
from lib.paper_exchange.instruments import LEVERAGE_STEP, MIN_LEVERAGE, SETTLE_COIN, Instrument
from lib.paper_exchange.market import Candle, MarketData
from lib.paper_exchange.matching import limit_fill_price, tpsl_trigger
from lib.paper_exchange.models import BUY, CANCELLED, FILLED, SELL, Account, BookState, Order, Position
from lib.paper_exchange.numbers import floor_to, fmt, is_multiple, params_error
from lib.paper_exchange.order_request import OrderRequest
from lib.paper_exchange.rules import check_linear, check_spot, check_spot_quote_amount, check_tpsl

INSUFFICIENT_AVAILABLE = 110007
SPOT_INSUFFICIENT_BALANCE = 170131
_KEY_ALPHABET = string.ascii_letters + string.digits


def _reject(code: int, message: str) -> ExchangeRejected:
    return ExchangeRejected(message, ret_code=code, ret_msg=message)


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class Fees:
    """Fee rates on traded value: taker for market and crossing orders, maker for resting ones."""

    taker: Decimal
    maker: Decimal


class Book:
    """All accounts of one paper exchange and the rules that move them."""

    def __init__(
        self,
        state: BookState,
        market: MarketData,
        instruments: Mapping[str, Instrument],
        fees: Fees,
        *,
        new_order_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.state = state
        self._market = market
        self._instruments = instruments
        self._fees = fees
        self._new_order_id = new_order_id
        self._by_key = {account.api_key: account for account in state.accounts.values()}
        self._open = {order.order_id for order in state.orders.values() if order.is_open}

    # ----------------------------------------------------------------------------------------- accounts

    def create_account(self, balance: Decimal, now_ms: int) -> Account:
        """A new account holding ``balance`` USDT, with a fresh random key pair."""
        if not balance.is_finite() or balance <= 0:
            raise InvalidRequest("balance must be a positive number", details={"balance": str(balance)})
        account_id = str(100_000_000 + secrets.randbelow(900_000_000))
        while account_id in self.state.accounts:
            account_id = str(100_000_000 + secrets.randbelow(900_000_000))
        account = Account(
            account_id=account_id,
            api_key=_random_text(18),
            api_secret=_random_text(36),
            created_time_ms=now_ms,
            wallet={SETTLE_COIN: balance},
        )
        self.state.accounts[account_id] = account
        self._by_key[account.api_key] = account
        return account

    def account_for_key(self, api_key: str) -> Account | None:
        """The account owning ``api_key``, if any."""
        return self._by_key.get(api_key)

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """Every listed instrument by symbol."""
        return self._instruments

    def instrument(self, symbol: str) -> Instrument:
        """The instrument of ``symbol`` or Bybit's 10001 for an unknown symbol."""
        inst = self._instruments.get(symbol)
        if inst is None:
            raise params_error(f"params error: symbol invalid: {symbol!r}")
        return inst

    def price(self, symbol: str, now_ms: int) -> Decimal | None:
        """The replay price of ``symbol`` at ``now_ms``."""
        return self._market.price(symbol, now_ms)

    def leverage(self, account: Account, symbol: str) -> Decimal:
        """The account's leverage for ``symbol`` (the instrument's default, 10x or less, until set)."""
        return account.leverage.get(symbol, self.instrument(symbol).default_leverage)

    def position(self, account: Account, symbol: str) -> Position:
        """The account's position in ``symbol``; a flat one (not stored) if it never traded it."""
        existing = account.positions.get(symbol)
        if existing is not None:
            return existing
        return Position(symbol=symbol, leverage=self.leverage(account, symbol))

    def orders_of(self, account: Account) -> list[Order]:
        """The account's orders, newest first."""
        return [self.state.orders[order_id] for order_id in reversed(account.order_ids)]

    # ------------------------------------------------------------------------------------------- margin

    def unrealised_pnl(self, account: Account, now_ms: int) -> Decimal:
        """Unrealised P&L of all the account's linear positions at the replay price."""
        total = Decimal(0)
        for position in account.positions.values():
            price = self.price(position.symbol, now_ms)
            if position.size > 0 and price is not None:
                total += position.unrealised_pnl(price)
        return total

    def position_margin(self, account: Account) -> Decimal:
        """Initial margin held by open positions."""
        return sum((p.initial_margin for p in account.positions.values() if p.size > 0), Decimal(0))

    def order_margin(self, account: Account) -> Decimal:
        """USDT reserved by resting orders: margin of linear orders, full cost of spot buys."""
        total = Decimal(0)
        for order_id in account.order_ids:
            order = self.state.orders[order_id]
            if not order.is_open or order.price is None or order.reduce_only:
                continue
            if order.category == "linear":
                total += order.qty * order.price / self.leverage(account, order.symbol)
            elif order.side == BUY:
                total += order.qty * order.price * (1 + self._fees.maker)
        return total

    def available(self, account: Account, now_ms: int) -> Decimal:
        """USDT free for new orders: balance plus unrealised P&L minus everything margin holds."""
        return (
            account.wallet.get(SETTLE_COIN, Decimal(0))
            + self.unrealised_pnl(account, now_ms)
            - self.position_margin(account)
            - self.order_margin(account)
        )

    def free_coin(self, account: Account, coin: str) -> Decimal:
        """Balance of a spot coin not promised to resting sell orders."""
        locked = sum(
            (
                order.qty
                for order_id in account.order_ids
                if (order := self.state.orders[order_id]).is_open
                and order.category == "spot"
                and order.side == SELL
                and self.instrument(order.symbol).base_coin == coin
            ),
            Decimal(0),
        )
        return account.wallet.get(coin, Decimal(0)) - locked

    # ------------------------------------------------------------------------------------------- orders

    def place_order(self, account: Account, request: OrderRequest, now_ms: int) -> Order:
        """Validate, record and (when it can) fill an order at replay time ``now_ms``."""
        if request.order_link_id and request.order_link_id in account.order_link_ids:
            raise _reject(DUPLICATE_ORDER_LINK_ID, "OrderLinkedID is duplicate")
        inst = self.instrument(request.symbol)
        last = self.price(request.symbol, now_ms)
        if last is None:
            raise params_error(f"params error: {request.symbol} has no trade yet at the replay time")
        if request.category == "linear":
            self._check_linear_request(account, inst, request, last, now_ms)
        else:
            self._check_spot_request(account, inst, request, last, now_ms)
        order = Order(
            order_id=self._new_order_id(),
            order_link_id=request.order_link_id,
            account_id=account.account_id,
            category=request.category,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            qty=self._trimmed_qty(account, request),
            price=request.price,
            time_in_force=request.time_in_force,
            reduce_only=request.reduce_only,
            close_on_trigger=request.close_on_trigger,
            take_profit=request.take_profit,
            stop_loss=request.stop_loss,
            tp_trigger_by=request.tp_trigger_by if request.take_profit is not None else "",
            sl_trigger_by=request.sl_trigger_by if request.stop_loss is not None else "",
            market_unit=self._market_unit(request),
            last_price_on_created=last,
            created_time_ms=now_ms,
            updated_time_ms=now_ms,
        )
        self._record(account, order)
        self._execute_on_arrival(account, order, last, now_ms)
        return order

    def cancel_order(
        self, account: Account, symbol: str, order_id: str | None, order_link_id: str | None, now_ms: int
    ) -> Order:
        """Cancel the account's open order (by ``order_id`` first, as Bybit does, else ``order_link_id``);
        110001 when there is none of that symbol still open (filled, cancelled, or never placed)."""
        key = order_id or account.order_link_ids.get(order_link_id or "")
        order = self.state.orders.get(key) if key else None
        if (
            order is None
            or order.account_id != account.account_id
            or order.symbol != symbol
            or not order.is_open
        ):
            raise _reject(ORDER_NOT_EXISTS, "order not exists or too late to cancel")
        self._cancel(order, now_ms)
        return order

    def _market_unit(self, request: OrderRequest) -> str:
        if request.category != "spot" or request.order_type != "Market":
            return ""
        if request.side == BUY:
            # Bybit's default for a spot market buy: qty is an amount of the quote coin.
            return request.market_unit or "quoteCoin"
        return request.market_unit or "baseCoin"

    def _trimmed_qty(self, account: Account, request: OrderRequest) -> Decimal:
        if request.category == "linear" and request.reduce_only:
            # Bybit trims a reduce-only order to the position it reduces.
            return min(request.qty, abs(self.position(account, request.symbol).signed_size))
        return request.qty

    def _check_linear_request(
        self, account: Account, inst: Instrument, request: OrderRequest, last: Decimal, now_ms: int
    ) -> None:
        if request.position_idx != 0:
            raise params_error("position idx not match position mode")
        reference = request.price if request.price is not None else last
        check_linear(inst, request.qty, request.price, reference, reduce_only=request.reduce_only)
        signed = self.position(account, request.symbol).signed_size
        direction = 1 if request.side == BUY else -1
        same_way = signed == 0 or (signed > 0) == (direction > 0)
        if request.reduce_only and same_way:
            raise _reject(REDUCE_ONLY_NOT_SATISFIED, "Reduce-only rule not satisfied")
        if request.take_profit is not None or request.stop_loss is not None:
            if request.reduce_only:
                raise params_error(
                    "params error: takeProfit/stopLoss cannot be attached to a reduce-only order"
                )
            check_tpsl(request.side, request.take_profit, request.stop_loss, reference)
        opening = request.qty if same_way else max(Decimal(0), request.qty - abs(signed))
        if opening > 0:
            needed = opening * reference / self.leverage(account, request.symbol)
            if needed > self.available(account, now_ms):
                raise _reject(INSUFFICIENT_AVAILABLE, "ab not enough for new order")

    def _check_spot_request(
        self, account: Account, inst: Instrument, request: OrderRequest, last: Decimal, now_ms: int
    ) -> None:
        if request.take_profit is not None or request.stop_loss is not None:
            raise params_error(
                "params error: the paper exchange supports takeProfit/stopLoss on linear orders only"
            )
        reference = request.price if request.price is not None else last
        if self._market_unit(request) == "quoteCoin":
            check_spot_quote_amount(inst, request.qty)
            base_qty = floor_to(request.qty / last, inst.base_precision)
            check_spot(inst, base_qty, None, last)
            cost = request.qty
        else:
            check_spot(inst, request.qty, request.price, reference)
            base_qty = request.qty
            cost = request.qty * reference
        if request.side == BUY:
            if cost * (1 + self._fees.taker) > self.available(account, now_ms):
                raise _reject(SPOT_INSUFFICIENT_BALANCE, "Insufficient balance.")
        elif base_qty > self.free_coin(account, inst.base_coin):
            raise _reject(SPOT_INSUFFICIENT_BALANCE, "Insufficient balance.")

    def _record(self, account: Account, order: Order) -> None:
        self.state.orders[order.order_id] = order
        account.order_ids.append(order.order_id)
        if order.order_link_id:
            account.order_link_ids[order.order_link_id] = order.order_id
        if order.is_open:
            self._open.add(order.order_id)

    def _execute_on_arrival(self, account: Account, order: Order, last: Decimal, now_ms: int) -> None:
        if order.price is None:
            self._fill(account, order, last, self._fees.taker, now_ms)
            return
        crosses = order.price >= last if order.side == BUY else order.price <= last
        if crosses and order.time_in_force == "PostOnly":
            self._cancel(order, now_ms, reject_reason="EC_PostOnlyWillTakeLiquidity")
        elif crosses:
            # A crossing limit order takes the market at once, at the replay price (within its limit).
            self._fill(account, order, last, self._fees.taker, now_ms)
        elif order.time_in_force in ("IOC", "FOK"):
            self._cancel(order, now_ms, reject_reason="EC_NoImmediateQtyToFill")

    def _cancel(
        self,
        order: Order,
        now_ms: int,
        *,
        reject_reason: str = "EC_NoError",
        cancel_type: str = "CancelByUser",
    ) -> None:
        order.status = CANCELLED
        order.reject_reason = reject_reason
        order.cancel_type = cancel_type
        order.updated_time_ms = now_ms
        self._open.discard(order.order_id)

    def _fill(self, account: Account, order: Order, price: Decimal, fee_rate: Decimal, now_ms: int) -> None:
        if order.category == "linear":
            qty = order.qty
            if order.reduce_only:
                qty = min(qty, abs(self.position(account, order.symbol).signed_size))
                if qty == 0 or self.position(account, order.symbol).side == order.side:
                    self._cancel(order, now_ms, cancel_type="CancelByReduceOnly")
                    return
            fee = qty * price * fee_rate
            position = account.positions.setdefault(
                order.symbol, Position(symbol=order.symbol, leverage=self.leverage(account, order.symbol))
            )
            gain = apply_linear_fill(position, order, qty, price, fee, now_ms)
            account.wallet[SETTLE_COIN] = account.wallet.get(SETTLE_COIN, Decimal(0)) + gain
        else:
            inst = self.instrument(order.symbol)
            qty = (
                floor_to(order.qty / price, inst.base_precision)
                if order.market_unit == "quoteCoin"
                else order.qty
            )
            fee = qty * price * fee_rate
            apply_spot_fill(account.wallet, inst.base_coin, order.side, qty, price, fee)
        order.status = FILLED
        order.cum_exec_qty = qty
        order.cum_exec_value = qty * price
        order.cum_exec_fee = fee
        order.avg_price = price
        order.updated_time_ms = now_ms
        self._open.discard(order.order_id)

    # ----------------------------------------------------------------------------------------- leverage

    def set_leverage(self, account: Account, symbol: str, buy: Decimal, sell: Decimal, now_ms: int) -> None:
        """Set the leverage of ``symbol`` (at most its ``maxLeverage``); 110043 when it is already that."""
        highest = self.instrument(symbol).max_leverage
        if buy != sell:
            raise params_error("buyLeverage must be equal to sellLeverage in one-way mode")
        if not MIN_LEVERAGE <= buy <= highest or not is_multiple(buy, LEVERAGE_STEP):
            raise params_error(
                f"leverage invalid: {fmt(buy)} (allowed {fmt(MIN_LEVERAGE)} to {fmt(highest)})"
            )
        if buy == self.leverage(account, symbol):
            raise _reject(LEVERAGE_NOT_MODIFIED, "leverage not modified")
        account.leverage[symbol] = buy
        position = account.positions.get(symbol)
        if position is not None:
            position.leverage = buy
            position.updated_time_ms = now_ms

    # ------------------------------------------------------------------------------------------- replay

    def process_until(self, t_ms: int) -> bool:
        """Run every candle that completed after the last processed time up to ``t_ms``.

        Returns whether any order filled or any stop triggered (the caller persists only then).
        """
        since = self.state.processed_until_ms
        if t_ms <= since:
            return False
        symbols = {self.state.orders[order_id].symbol for order_id in self._open}
        for account in self.state.accounts.values():
            symbols.update(
                p.symbol
                for p in account.positions.values()
                if p.size > 0 and (p.take_profit is not None or p.stop_loss is not None)
            )
        events = sorted(
            (int(self._market.series(symbol).open_time_ms[index]), symbol, index)
            for symbol in symbols
            for index in self._market.completed_between(symbol, since, t_ms)
        )
        changed = False
        for _, symbol, index in events:
            changed |= self._on_candle(symbol, self._market.candle(symbol, index))
        self.state.processed_until_ms = t_ms
        return changed

    def _on_candle(self, symbol: str, candle: Candle) -> bool:
        changed = False
        for account in self.state.accounts.values():
            position = account.positions.get(symbol)
            if position is None or position.size == 0:
                continue
            trigger = tpsl_trigger(position.side, position.take_profit, position.stop_loss, candle)
            if trigger is not None:
                self._close_by_trigger(account, position, trigger.kind, trigger.price, candle.close_time_ms)
                changed = True
        resting = sorted(
            (
                self.state.orders[order_id]
                for order_id in self._open
                if self.state.orders[order_id].symbol == symbol
            ),
            key=lambda order: (order.created_time_ms, order.order_id),
        )
        for order in resting:
            if order.price is None or not order.is_open:
                continue
            fill_price = limit_fill_price(order.side, order.price, candle)
            if fill_price is not None:
                account = self.state.accounts[order.account_id]
                self._fill(account, order, fill_price, self._fees.maker, candle.close_time_ms)
                changed = True
        return changed

    def _close_by_trigger(
        self, account: Account, position: Position, kind: str, price: Decimal, now_ms: int
    ) -> None:
        order = Order(
            order_id=self._new_order_id(),
            order_link_id="",
            account_id=account.account_id,
            category="linear",
            symbol=position.symbol,
            side=SELL if position.side == BUY else BUY,
            order_type="Market",
            qty=position.size,
            price=None,
            time_in_force="IOC",
            reduce_only=True,
            close_on_trigger=True,
            take_profit=None,
            stop_loss=None,
            tp_trigger_by="",
            sl_trigger_by="",
            market_unit="",
            last_price_on_created=price,
            created_time_ms=now_ms,
            updated_time_ms=now_ms,
            stop_order_type=kind,
            create_type=f"CreateBy{kind}",
        )
        self._record(account, order)
        self._fill(account, order, price, self._fees.taker, now_ms)
