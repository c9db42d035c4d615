"""``trading-account``: a user connects Bybit API keys, sees them masked, and disconnects them.

Actions:

- ``connect`` (user): ``environment`` (mainnet, testnet, demo, paper), ``api_key``, ``api_secret``.
  The keys are checked with a signed wallet-balance call, then stored encrypted; the answer is the
  masked account, the balance seen, and whether live trading is enabled. Refused keys: 400
  ``invalid_exchange_credentials``; an exchange that cannot answer: 503.
- ``account_status`` (user): the caller's accounts, masked.
- ``disconnect`` (user): ``environment``; 404 when nothing is connected there; 409 while the account
  has open orders or positions, unless ``confirm_open_orders`` (they are then marked ``untracked``
  until the same API key is connected again, which re-links them).
- ``status`` (anyone): the liveness answer every function gives.

The read action is ``account_status`` rather than ``status`` (DESIGN.md calls it "status") because
``{"action": "status"}`` is already every function's liveness check, which anyone may call and which
diagnostics calls with the service role; one word cannot mean both.
"""

from __future__ import annotations

from functions.trading_account.models import (
    AccountStatus,
    ConnectAccount,
    Connected,
    DisconnectAccount,
    Disconnected,
    GetAccountStatus,
    TradingAccountRequest,
    TradingAccountResponse,
)
from lib.app.context import Context
from lib.exchange.ports import Credentials
from lib.http.spec import FunctionSpec, StatusRequest, status_response
from lib.log import log_event
from lib.services.accounts import (
    connect_account,
    disconnect_account,
    list_accounts,
    live_trading_enabled,
)

NAME = "trading-account"


async def handle(
    request: ConnectAccount | GetAccountStatus | DisconnectAccount | StatusRequest, ctx: Context
) -> TradingAccountResponse:
    """Parse, call lib, map."""
    if isinstance(request, StatusRequest):
        return await status_response(NAME)
    user_id = ctx.require_user_id()
    if isinstance(request, ConnectAccount):
        creds = Credentials(
            environment=request.environment,
            api_key=request.api_key.get_secret_value(),
            api_secret=request.api_secret.get_secret_value(),
        )
        connected = await connect_account(
            ctx.db, ctx.services.vault, ctx.services.exchange, ctx.caller, user_id, creds
        )
        log_event(
            ctx.log,
            "trading_account_connected",
            account_id=connected.account.id,
            environment=connected.account.environment,
            key_version=connected.account.key_version,
            relinked_orders=connected.relinked_orders,
            untracked_orders=connected.untracked_orders,
        )
        return Connected(
            account=connected.account,
            balance=connected.balance,
            live_trading_enabled=connected.live_trading_enabled,
            places_live_orders=connected.places_live_orders,
            relinked_orders=connected.relinked_orders,
            untracked_orders=connected.untracked_orders,
        )
    if isinstance(request, GetAccountStatus):
        records = await list_accounts(ctx.db, ctx.caller, user_id)
        return AccountStatus(
            user_id=user_id,
            accounts=list(records),
            live_trading_enabled=await live_trading_enabled(ctx.db),
        )
    gone = await disconnect_account(
        ctx.db, ctx.caller, user_id, request.environment, confirm_open_orders=request.confirm_open_orders
    )
    log_event(
        ctx.log,
        "trading_account_disconnected",
        account_id=gone.account_id,
        environment=request.environment,
        untracked_orders=gone.untracked_orders,
    )
    return Disconnected(
        environment=request.environment, account_id=gone.account_id, untracked_orders=gone.untracked_orders
    )


SPEC = FunctionSpec(
    name=NAME,
    summary="Connect (checked, then encrypted), show (masked) and disconnect the caller's Bybit API keys",
    request_type=TradingAccountRequest,
    response_type=TradingAccountResponse,
    handler=handle,
    access={"connect": "user", "account_status": "user", "disconnect": "user", "status": "anyone"},
    default_access="user",
)
