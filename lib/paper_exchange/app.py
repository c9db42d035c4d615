"""The HTTP face of the paper exchange: Bybit V5 endpoints plus local ``/_paper`` controls.

A thin layer: parse the query or body, call :class:`lib.paper_exchange.engine.PaperEngine`, wrap the
answer in Bybit's envelope ``{"retCode", "retMsg", "result", "retExtInfo", "time"}`` (HTTP 200, errors as
retCodes, as Bybit does). Injected faults happen here, before anything else, since they imitate the
network and Bybit's gateway. The ``/_paper`` controls (plain JSON, loopback clients only) are in
:mod:`lib.paper_exchange.controls`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lib.errors import ExchangeRejected
from lib.exchange import bybit
from lib.paper_exchange.auth import authenticate
from lib.paper_exchange.config import PaperExchangeConfig
from lib.paper_exchange.controls import control_routes
from lib.paper_exchange.engine import PaperEngine
from lib.paper_exchange.faults import Fault
from lib.paper_exchange.history import execution_list, order_history
from lib.paper_exchange.instruments import CATEGORIES, instrument_info
from lib.paper_exchange.json_body import BodyError, load_json_object
from lib.paper_exchange.klines import DEFAULT_LIMIT, MAX_LIMIT, KlineQuery, build_klines, check_interval
from lib.paper_exchange.models import Account
from lib.paper_exchange.numbers import params_error, parse_decimal, parse_integer
from lib.paper_exchange.order_request import parse_order_request
from lib.paper_exchange.queries import OrderQuery, find_orders, find_positions, page
from lib.paper_exchange.ratelimit import IP_BAN_TEXT, RateStatus, rate_limited_status
from lib.paper_exchange.tickers import ticker
from lib.paper_exchange.views import order_view, position_view, wallet_view

#: The answers of the faults that record an order and then report a server error (Bybit's messages).
_ACCEPTED_ERRORS: Mapping[Fault, tuple[int, str]] = {
    Fault.ACCEPTED_SERVER_TIMEOUT: (bybit.SERVER_TIMEOUT, "Server Timeout"),
    Fault.ACCEPTED_SERVER_ERROR: (bybit.SERVER_ERROR, "Server error"),
}

_OUT_OF_RANGE = params_error("params error: a number is out of range")

Params = Mapping[str, Any]
MarketHandler = Callable[[PaperEngine, Params, int], dict[str, Any]]
PrivateHandler = Callable[[PaperEngine, Account, Params], dict[str, Any]]


# ------------------------------------------------------------------------------------------- envelope


def _envelope(
    engine: PaperEngine, result: dict[str, Any], code: int = 0, message: str = "OK"
) -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": engine.wall_ms()}


def _bybit(
    engine: PaperEngine, result: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(_envelope(engine, result), headers=dict(headers or {}))


def _bybit_error(
    engine: PaperEngine, exc: ExchangeRejected, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    code = exc.ret_code if exc.ret_code is not None else 10001
    return JSONResponse(_envelope(engine, {}, code, exc.ret_msg or exc.message), headers=dict(headers or {}))


def _rate_limited(engine: PaperEngine, status: RateStatus) -> JSONResponse:
    return JSONResponse(
        _envelope(engine, {}, bybit.TOO_MANY_VISITS, "Too many visits!"), headers=status.headers()
    )


def _ip_refused(engine: PaperEngine, request: Request) -> Response | None:
    """Count the request against its source address (Bybit's gateway, before anything else): a 403
    when the address is banned or has just broken the limit, else None."""
    path = request.url.path
    engine.requests[path] = engine.requests.get(path, 0) + 1
    address = request.client.host if request.client is not None else ""
    if engine.ip_limiter.allow(address, time.monotonic()):
        return None
    return PlainTextResponse(IP_BAN_TEXT, status_code=403)


async def _injected_fault(engine: PaperEngine, group: str, *, order_create: bool = False) -> Response | Fault:
    """Latency, then the drawn fault: a ready answer for it, or the fault to act on later."""
    spec = engine.faults.spec(group)
    if spec.latency_ms:
        await asyncio.sleep(spec.latency_ms / 1000)
    fault = engine.faults.draw(group, accepts_after_timeout=order_create)
    if fault is Fault.TIMEOUT:
        await asyncio.sleep(spec.hang_ms / 1000)
        return PlainTextResponse("Gateway Time-out", status_code=504)
    if fault is Fault.HTTP_5XX:
        return PlainTextResponse("Service Unavailable", status_code=spec.http_5xx_status)
    if fault is Fault.RATE_LIMIT:
        return _rate_limited(engine, rate_limited_status(engine.wall_ms()))
    return fault


# --------------------------------------------------------------------------------------------- params


def _category(params: Params, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = params.get("category") or default
    if value is None:
        raise params_error("params error: category is required")
    if value not in allowed:
        raise params_error(f"params error: category only support {', '.join(allowed)}")
    return str(value)


def _int(params: Params, name: str, default: int | None, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    number = parse_integer(value)
    if number is None:
        raise params_error(f"params error: {name} must be an integer")
    if not low <= number <= high:
        raise params_error(f"params error: {name} must be between {low} and {high}")
    return number


def _limit(params: Params, default: int, high: int) -> int:
    value = _int(params, "limit", default, 1, high)
    return default if value is None else value


def _text(params: Params, name: str) -> str | None:
    value = params.get(name)
    return str(value) if value not in (None, "") else None


def _symbol(engine: PaperEngine, params: Params) -> str:
    symbol = _text(params, "symbol")
    if symbol is None:
        raise params_error("params error: symbol is required")
    if symbol not in engine.instruments:
        raise params_error("Not supported symbols")
    return symbol


# -------------------------------------------------------------------------------------- market routes


def server_time(engine: PaperEngine, params: Params, now_ms: int) -> dict[str, Any]:
    """``/v5/market/time``: wall-clock time (the one signed requests are checked against)."""
    wall = engine.wall_ms()
    return {"timeSecond": str(wall // 1000), "timeNano": str(wall * 1_000_000)}


def instruments_info(engine: PaperEngine, params: Params, now_ms: int) -> dict[str, Any]:
    """``/v5/market/instruments-info`` with ``symbol`` filter and cursor paging (``limit`` up to 1000)."""
    category = _category(params, CATEGORIES)
    symbol = _text(params, "symbol")
    items = [
        instrument_info(category, inst)
        for name, inst in sorted(engine.instruments.items())
        if symbol is None or name == symbol
    ]
    chunk, cursor = page(items, _limit(params, 500, 1000), _text(params, "cursor"))
    return {"category": category, "list": chunk, "nextPageCursor": cursor}


def tickers(engine: PaperEngine, params: Params, now_ms: int) -> dict[str, Any]:
    """``/v5/market/tickers`` of one symbol or all, at the replay time."""
    category = _category(params, CATEGORIES)
    symbols = [_symbol(engine, params)] if _text(params, "symbol") else sorted(engine.instruments)
    items = [ticker(engine.market, engine.instruments[s], category, now_ms) for s in symbols]
    return {"category": category, "list": [item for item in items if item is not None]}


def kline(engine: PaperEngine, params: Params, now_ms: int) -> dict[str, Any]:
    """``/v5/market/kline``: aggregated candles known at the replay time, newest first."""
    category = _category(params, CATEGORIES, "linear")
    symbol = _symbol(engine, params)
    interval = check_interval(_text(params, "interval") or "")
    query = KlineQuery(
        symbol=symbol,
        interval=interval,
        start_ms=_int(params, "start", None, 0, 2**62),
        end_ms=_int(params, "end", None, 0, 2**62),
        limit=_limit(params, DEFAULT_LIMIT, MAX_LIMIT),
    )
    return {"category": category, "symbol": symbol, "list": build_klines(engine.market, query, now_ms)}


# ------------------------------------------------------------------------------------- private routes


def order_create(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/order/create``."""
    order = engine.place_order(account, parse_order_request(params))
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def order_cancel(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/order/cancel``: an open order by ``orderId`` or ``orderLinkId`` (110001 when not open)."""
    _category(params, CATEGORIES)
    symbol = _text(params, "symbol")
    if symbol is None:
        raise params_error("params error: symbol is required")
    order_id, link_id = _text(params, "orderId"), _text(params, "orderLinkId")
    if order_id is None and link_id is None:
        raise params_error("params error: orderId or orderLinkId is required")
    order = engine.cancel_order(account, symbol, order_id, link_id)
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def order_realtime(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/order/realtime``: open orders, or recent closed ones (``openOnly``), newest first."""
    category = _category(params, CATEGORIES)
    engine.now_ms()
    query = OrderQuery(
        category=category,
        symbol=_text(params, "symbol"),
        base_coin=_text(params, "baseCoin"),
        settle_coin=_text(params, "settleCoin"),
        order_id=_text(params, "orderId"),
        order_link_id=_text(params, "orderLinkId"),
        open_only=_int(params, "openOnly", 0, 0, 2) or 0,
    )
    orders = find_orders(engine.book, account, query)
    chunk, cursor = page(orders, _limit(params, 20, 50), _text(params, "cursor"))
    return {"category": category, "nextPageCursor": cursor, "list": [order_view(o) for o in chunk]}


def position_list(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/position/list`` (linear only: the paper exchange has no other derivatives)."""
    category = _category(params, ("linear",))
    now = engine.now_ms()
    positions = find_positions(engine.book, account, _text(params, "symbol"), _text(params, "settleCoin"))
    chunk, cursor = page(positions, _limit(params, 20, 200), _text(params, "cursor"))
    views = [position_view(p, engine.book.price(p.symbol, now)) for p in chunk]
    return {"category": category, "nextPageCursor": cursor, "list": views}


def set_leverage(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/position/set-leverage``; 110043 when the leverage is already the asked one."""
    _category(params, ("linear",))
    symbol = _text(params, "symbol")
    if symbol is None:
        raise params_error("params error: symbol is required")
    buy = parse_decimal(params.get("buyLeverage"), "buyLeverage") or Decimal(0)
    sell = parse_decimal(params.get("sellLeverage"), "sellLeverage") or Decimal(0)
    engine.set_leverage(account, symbol, buy, sell)
    return {}


def wallet_balance(engine: PaperEngine, account: Account, params: Params) -> dict[str, Any]:
    """``/v5/account/wallet-balance`` of the unified account, optionally for some coins."""
    if params.get("accountType") != "UNIFIED":
        raise params_error("accountType only support UNIFIED")
    coin = _text(params, "coin")
    coins = {c.strip() for c in coin.split(",") if c.strip()} if coin else None
    now = engine.now_ms()
    return {"list": [wallet_view(engine.book, account, now, coins)]}


# ----------------------------------------------------------------------------------- endpoint wrappers


def _market_endpoint(engine: PaperEngine, handler: MarketHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        refused = _ip_refused(engine, request)
        if refused is not None:
            return refused
        fault = await _injected_fault(engine, "market")
        if isinstance(fault, Response):
            return fault
        try:
            return _bybit(engine, handler(engine, request.query_params, engine.now_ms()))
        except ExchangeRejected as exc:
            return _bybit_error(engine, exc)
        except ArithmeticError:
            return _bybit_error(engine, _OUT_OF_RANGE)

    return endpoint


def _json_params(raw: bytes) -> dict[str, Any]:
    try:
        return load_json_object(raw)
    except BodyError as exc:
        raise params_error(f"params error: {exc}") from None


def _private_endpoint(
    engine: PaperEngine, handler: PrivateHandler, *, order_create: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        refused = _ip_refused(engine, request)
        if refused is not None:
            return refused
        fault = await _injected_fault(engine, "order", order_create=order_create)
        if isinstance(fault, Response):
            return fault
        post = request.method == "POST"
        # The signature covers the bytes exactly as sent: the raw body, or the raw query string.
        raw = await request.body() if post else request.scope.get("query_string", b"")
        wall = engine.wall_ms()
        try:
            api_key = authenticate(request.headers, raw.decode("utf-8", "replace"), engine.secret_for, wall)
        except ExchangeRejected as exc:
            return _bybit_error(engine, exc)
        account = engine.book.account_for_key(api_key)
        if account is None:  # authenticate found its secret, so this cannot happen; typed for mypy
            return _bybit_error(
                engine, ExchangeRejected("API key is invalid.", ret_code=bybit.INVALID_API_KEY)
            )
        status = engine.limiter.hit(account.account_id, request.url.path, wall)
        if not status.allowed:
            return _rate_limited(engine, status)
        try:
            params: Params = _json_params(raw) if post else request.query_params
            result = handler(engine, account, params)
        except ExchangeRejected as exc:
            return _bybit_error(engine, exc, status.headers())
        except ArithmeticError:
            # Parsing bounds every number, so this is a last line of defence: a decimal operation that
            # overflowed or was impossible is the caller's out-of-range value, never a server error.
            return _bybit_error(engine, _OUT_OF_RANGE, status.headers())
        if fault is Fault.ACCEPTED_TIMEOUT:
            # The order is recorded and persisted; the client just never hears about it.
            await asyncio.sleep(engine.faults.spec("order").hang_ms / 1000)
            return PlainTextResponse("Gateway Time-out", status_code=504)
        if fault in _ACCEPTED_ERRORS:
            # The order is recorded and persisted; the client hears a server error, as Bybit sends it.
            code, message = _ACCEPTED_ERRORS[fault]
            return JSONResponse(_envelope(engine, {}, code, message), headers=status.headers())
        return _bybit(engine, result, status.headers())

    return endpoint


# ------------------------------------------------------------------------------------------------ app


def create_app(config: PaperExchangeConfig, *, engine: PaperEngine | None = None) -> Starlette:
    """The paper exchange as an ASGI app (state loaded now, saved again on shutdown)."""
    paper = engine if engine is not None else PaperEngine(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        paper.save()

    routes = [
        Route(bybit.SERVER_TIME, _market_endpoint(paper, server_time), methods=["GET"]),
        Route(bybit.INSTRUMENTS_INFO, _market_endpoint(paper, instruments_info), methods=["GET"]),
        Route(bybit.TICKERS, _market_endpoint(paper, tickers), methods=["GET"]),
        Route(bybit.KLINE, _market_endpoint(paper, kline), methods=["GET"]),
        Route(
            bybit.ORDER_CREATE, _private_endpoint(paper, order_create, order_create=True), methods=["POST"]
        ),
        Route(bybit.ORDER_CANCEL, _private_endpoint(paper, order_cancel), methods=["POST"]),
        Route(bybit.ORDER_REALTIME, _private_endpoint(paper, order_realtime), methods=["GET"]),
        Route(bybit.POSITION_LIST, _private_endpoint(paper, position_list), methods=["GET"]),
        Route(bybit.SET_LEVERAGE, _private_endpoint(paper, set_leverage), methods=["POST"]),
        Route(bybit.WALLET_BALANCE, _private_endpoint(paper, wallet_balance), methods=["GET"]),
        Route(bybit.ORDER_HISTORY, _private_endpoint(paper, order_history), methods=["GET"]),
        Route(bybit.EXECUTION_LIST, _private_endpoint(paper, execution_list), methods=["GET"]),
        *control_routes(paper),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.engine = paper
    return app
