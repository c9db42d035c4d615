"""The paper exchange's state: accounts, their orders and positions. Plain mutable dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

BUY = "Buy"
SELL = "Sell"

# Order statuses, as Bybit spells them. The paper exchange fills whole orders: no PartiallyFilled.
NEW = "New"
FILLED = "Filled"
CANCELLED = "Cancelled"
OPEN_STATUSES = frozenset({NEW})


@dataclass(slots=True)
class Order:
    """One order, open or closed. Prices and quantities are exact decimals."""

    order_id: str
    order_link_id: str
    account_id: str
    category: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    time_in_force: str
    reduce_only: bool
    close_on_trigger: bool
    take_profit: Decimal | None
    stop_loss: Decimal | None
    tp_trigger_by: str
    sl_trigger_by: str
    market_unit: str
    last_price_on_created: Decimal
    created_time_ms: int
    updated_time_ms: int
    status: str = NEW
    cum_exec_qty: Decimal = Decimal(0)
    cum_exec_value: Decimal = Decimal(0)
    cum_exec_fee: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    stop_order_type: str = ""
    create_type: str = "CreateByUser"
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"

    @property
    def is_open(self) -> bool:
        """Whether the order still rests on the book."""
        return self.status in OPEN_STATUSES

    @property
    def direction(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self.side == BUY else -1


@dataclass(slots=True)
class Position:
    """A linear one-way position (positionIdx 0). ``side`` is ``""`` when flat."""

    symbol: str
    leverage: Decimal
    side: str = ""
    size: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tp_trigger_by: str = ""
    sl_trigger_by: str = ""
    cum_realised_pnl: Decimal = Decimal(0)
    cur_realised_pnl: Decimal = Decimal(0)
    created_time_ms: int = 0
    updated_time_ms: int = 0

    @property
    def signed_size(self) -> Decimal:
        """Size with a sign: positive long, negative short, zero flat."""
        return self.size if self.side == BUY else -self.size

    @property
    def initial_margin(self) -> Decimal:
        """Margin the position holds: its entry value over its leverage."""
        return self.size * self.avg_price / self.leverage

    def unrealised_pnl(self, price: Decimal) -> Decimal:
        """Profit if the position were closed at ``price``."""
        return (price - self.avg_price) * self.signed_size


@dataclass(slots=True)
class Account:
    """A paper account: its key pair, unified wallet (coin -> balance), leverage and positions."""

    account_id: str
    api_key: str
    api_secret: str = field(repr=False)
    created_time_ms: int
    wallet: dict[str, Decimal] = field(default_factory=dict)
    leverage: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    order_ids: list[str] = field(default_factory=list)
    order_link_ids: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BookState:
    """Everything the exchange must not forget across a restart (besides the clock)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    processed_until_ms: int = 0
