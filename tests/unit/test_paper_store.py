"""The state file round-trips exactly and is replaced atomically."""

import gzip
import logging
from decimal import Decimal as D
from pathlib import Path

import pytest

from lib.errors import ConfigError
from lib.paper_exchange import store
from lib.paper_exchange.config import PaperExchangeConfig
from lib.paper_exchange.engine import PaperEngine
from lib.paper_exchange.models import Account, BookState, Order, Position


def sample_state() -> store.SavedState:
    account = Account(
        account_id="123456789",
        api_key="k" * 18,
        api_secret="s" * 36,
        created_time_ms=5,
        wallet={"USDT": D("9999.951495533"), "ETH": D("0.1")},
        leverage={"ETHUSDT": D("5")},
        positions={
            "ETHUSDT": Position(
                symbol="ETHUSDT", leverage=D("5"), side="Buy", size=D("1000"), stop_loss=D("0.085")
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
        symbol="ETHUSDT",
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


def _usdt_folder(folder: Path, rows: int = 600) -> None:
    """ETHUSDT's first five-minute candles, as a data folder of its own."""
    from lib.research.bundled_data import BUNDLED_USDT_DIR

    lines = gzip.decompress((BUNDLED_USDT_DIR / "5m" / "ETHUSDT-5m.csv.gz").read_bytes()).decode()
    (folder / "ETHUSDT-5m.csv").write_text("\n".join(lines.splitlines()[: rows + 1]) + "\n")


@pytest.mark.parametrize(
    ("replay_ms", "symbol"),
    [
        (1_516_643_700_000, "ETHUSDT"),  # January 2018: the old replay's time, outside these candles
        (1_704_067_200_000 + 400 * 300_000, "ETHBTC"),  # inside them, but on a symbol not served
    ],
)
def test_a_state_file_of_other_data_is_set_aside_and_a_new_replay_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, replay_ms: int, symbol: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _usdt_folder(data)
    state_path = tmp_path / "state.json"
    old = sample_state()
    old.book.orders["o-1"].symbol = symbol
    store.save(state_path, store.SavedState(book=old.book, replay_ms=replay_ms))
    before = state_path.read_text()

    with caplog.at_level(logging.WARNING, logger="aitradex.paper_exchange"):
        engine = PaperEngine(PaperExchangeConfig(data_dir=data, state_path=state_path))

    assert engine.now_ms() == engine.default_start_ms  # a new replay
    assert engine.book.state.accounts == {}
    aside = tmp_path / f"state.json.{replay_ms}.stale"
    assert aside.read_text() == before  # the old state is kept, untouched
    assert store.load(state_path) is not None  # and the new one written in its place
    assert any("paper_state_set_aside" in record.getMessage() for record in caplog.records)


def test_a_state_file_of_this_data_resumes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _usdt_folder(data)
    state_path = tmp_path / "state.json"
    saved = sample_state()
    replay_ms = 1_704_067_200_000 + 400 * 300_000
    store.save(state_path, store.SavedState(book=saved.book, replay_ms=replay_ms))

    engine = PaperEngine(PaperExchangeConfig(data_dir=data, state_path=state_path))

    assert engine.now_ms() == replay_ms
    assert set(engine.book.state.accounts) == {"123456789"}
    assert list(tmp_path.glob("*.stale")) == []


def test_a_btc_quoted_data_folder_is_refused_at_start() -> None:
    from lib.research.bundled_data import BUNDLED_DATA_DIR

    with pytest.raises(ConfigError, match="USDT-quoted pairs only"):
        PaperEngine(PaperExchangeConfig(data_dir=BUNDLED_DATA_DIR, state_path=None))
