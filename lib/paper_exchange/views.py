"""Bybit V5 JSON shapes of the book's orders, positions and wallet (every number as a string)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lib.paper_exchange.book import Book
from lib.paper_exchange.instruments import SETTLE_COIN
from lib.paper_exchange.models import Account, Order, Position
from lib.paper_exchange.numbers import fmt, fmt_optional


def order_view(order: Order) -> dict[str, Any]:
    """One element of ``/v5/order/realtime``'s ``list``."""
    leaves = order.qty - order.cum_exec_qty if order.is_open else Decimal(0)
    has_tpsl = order.take_profit is not None or order.stop_loss is not None
    return {
        "orderId": order.order_id,
        "orderLinkId": order.order_link_id,
        "blockTradeId": "",
        "symbol": order.symbol,
        "price": fmt(order.price) if order.price is not None else "0",
        "qty": fmt(order.qty),
        "side": order.side,
        "isLeverage": "0" if order.category == "spot" else "",
        "positionIdx": 0,
        "orderStatus": order.status,
        "createType": order.create_type,
        "cancelType": order.cancel_type,
        "rejectReason": order.reject_reason,
        "avgPrice": fmt_optional(order.avg_price),
        "leavesQty": fmt(leaves),
        "leavesValue": fmt(leaves * order.price) if order.price is not None else "0",
        "cumExecQty": fmt(order.cum_exec_qty),
        "cumExecValue": fmt(order.cum_exec_value),
        "cumExecFee": fmt(order.cum_exec_fee),
        "timeInForce": order.time_in_force,
        "orderType": order.order_type,
        "stopOrderType": order.stop_order_type,
        "orderIv": "",
        "marketUnit": order.market_unit,
        "triggerPrice": "",
        "takeProfit": fmt_optional(order.take_profit),
        "stopLoss": fmt_optional(order.stop_loss),
        "tpslMode": "Full" if has_tpsl else "",
        "ocoTriggerBy": "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "tpTriggerBy": order.tp_trigger_by,
        "slTriggerBy": order.sl_trigger_by,
        "triggerDirection": 0,
        "triggerBy": "",
        "lastPriceOnCreated": fmt(order.last_price_on_created),
        "basePrice": "",
        "reduceOnly": order.reduce_only,
        "closeOnTrigger": order.close_on_trigger,
        "placeType": "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "createdTime": str(order.created_time_ms),
        "updatedTime": str(order.updated_time_ms),
    }


def position_view(position: Position, mark_price: Decimal | None) -> dict[str, Any]:
    """One element of ``/v5/position/list``'s ``list`` (mark price = replay price)."""
    flat = position.size == 0
    mark = mark_price if mark_price is not None else position.avg_price
    return {
        "positionIdx": 0,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": position.symbol,
        "side": position.side,
        "size": fmt(position.size),
        "avgPrice": fmt(position.avg_price),
        "positionValue": fmt(position.size * position.avg_price),
        "tradeMode": 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": fmt(position.leverage),
        "markPrice": fmt(mark),
        "liqPrice": "",
        "bustPrice": "",
        "positionIM": fmt(position.initial_margin),
        "positionMM": "0",
        "positionBalance": fmt(position.initial_margin),
        "takeProfit": fmt(position.take_profit) if position.take_profit is not None else "0",
        "stopLoss": fmt(position.stop_loss) if position.stop_loss is not None else "0",
        "trailingStop": "0",
        "sessionAvgPrice": "",
        "delta": "",
        "gamma": "",
        "vega": "",
        "theta": "",
        "unrealisedPnl": "0" if flat else fmt(position.unrealised_pnl(mark)),
        "curRealisedPnl": fmt(position.cur_realised_pnl),
        "cumRealisedPnl": fmt(position.cum_realised_pnl),
        "adlRankIndicator": 0 if flat else 1,
        "createdTime": str(position.created_time_ms),
        "updatedTime": str(position.updated_time_ms),
        "seq": 0,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "tpslMode": "Full",
    }


def wallet_view(book: Book, account: Account, now_ms: int, coins: set[str] | None) -> dict[str, Any]:
    """The single ``UNIFIED`` element of ``/v5/account/wallet-balance``'s ``list``.

    USDT is worth 1 USD; a spot coin is valued at the replay price of its pair against the quote
    (treated as USDT, see :mod:`lib.paper_exchange.instruments`).
    """
    upl = book.unrealised_pnl(account, now_ms)
    position_im = book.position_margin(account)
    order_im = book.order_margin(account)
    cum_realised = sum((p.cum_realised_pnl for p in account.positions.values()), Decimal(0))
    entries = []
    total_equity = Decimal(0)
    for coin, balance in sorted(account.wallet.items()):
        if coin == SETTLE_COIN:
            equity, usd_value = balance + upl, balance + upl
        else:
            equity, usd_value = balance, balance * _coin_price(book, coin, now_ms)
        total_equity += usd_value
        if coins is not None and coin not in coins:
            continue
        settle = coin == SETTLE_COIN
        entries.append(
            {
                "coin": coin,
                "equity": fmt(equity),
                "usdValue": fmt(usd_value),
                "walletBalance": fmt(balance),
                "free": "",
                "locked": fmt(balance - book.free_coin(account, coin)) if not settle else "0",
                "spotHedgingQty": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "accruedInterest": "0",
                "totalOrderIM": fmt(order_im) if settle else "0",
                "totalPositionIM": fmt(position_im) if settle else "0",
                "totalPositionMM": "0",
                "unrealisedPnl": fmt(upl) if settle else "0",
                "cumRealisedPnl": fmt(cum_realised) if settle else "0",
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": True,
            }
        )
    wallet_balance = total_equity - upl
    return {
        "accountType": "UNIFIED",
        "accountIMRate": "0",
        "accountMMRate": "0",
        "accountLTV": "0",
        "totalEquity": fmt(total_equity),
        "totalWalletBalance": fmt(wallet_balance),
        "totalMarginBalance": fmt(total_equity),
        "totalAvailableBalance": fmt(book.available(account, now_ms)),
        "totalPerpUPL": fmt(upl),
        "totalInitialMargin": fmt(position_im + order_im),
        "totalMaintenanceMargin": "0",
        "coin": entries,
    }


def _coin_price(book: Book, coin: str, now_ms: int) -> Decimal:
    for inst in book.instruments.values():
        if inst.base_coin == coin:
            return book.price(inst.symbol, now_ms) or Decimal(0)
    return Decimal(0)
