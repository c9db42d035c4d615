"""The state file round-trips exactly and is replaced atomically."""

from decimal import Decimal as D
from pathlib import Path

from lib.paper_exchange import store
from lib.paper_exchange.models import Account, BookState, Order, Position


def sample_state() -> store.SavedState:
    account = Account(
        account_id="123456789",
        api_key="k" * 18,
        api_secret="s" * 36,
        created_time_ms=5,
        wallet={"USDT": D("9999.951495533"), "ETH": D("0.1")},
        leverage={"ETHBTC": D("5")},
        positions={
            "ETHBTC": Position(
                symbol="ETHBTC", leverage=D("5"), side="Buy", size=D("1000"), stop_loss=D("0.085")
            )
        },
        order_ids=["o-1"],
        order_link_ids={"link-1": "o-1"},
    )
    order = Order(
        order_id="o-1",
        order_link_id="link-1",
        account_id="123456789",
        category="linear",
        symbol="ETHBTC",
        side="Buy",
        order_type="Limit",
        qty=D("1000"),
        price=D("0.088001"),
        time_in_force="GTC",
        reduce_only=False,
        close_on_trigger=False,
        take_profit=None,
        stop_loss=D("0.085"),
        tp_trigger_by="",
        sl_trigger_by="LastPrice",
        market_unit="",
        last_price_on_created=D("0.08818994"),
        created_time_ms=10,
        updated_time_ms=11,
    )
    book = BookState(
        accounts={account.account_id: account}, orders={order.order_id: order}, processed_until_ms=77
    )
    return store.SavedState(book=book, replay_ms=88)


def test_state_round_trips_through_the_file_exactly(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.json"
    store.save(path, sample_state())
    assert store.load(path) == sample_state()


def test_a_save_leaves_no_temporary_file_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store.save(path, sample_state())
    store.save(path, sample_state())
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert path.stat().st_mode & 0o077 == 0


def test_a_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    assert store.load(tmp_path / "absent.json") is None
