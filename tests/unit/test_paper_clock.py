"""The replay clock: frozen or running, only forward, never past the data."""

import pytest

from lib.core.timeframes import FIVE_MINUTES_MS
from lib.errors import InvalidRequest
from lib.paper_exchange.clock import ReplayClock


def clock(speed: float = 0.0) -> ReplayClock:
    return ReplayClock(replay_ms=1_000_000, anchor_wall_ms=50, speed=speed, min_ms=0, max_ms=10_000_000)


def test_a_frozen_clock_does_not_move_with_wall_time() -> None:
    assert clock().now(wall_ms=999_999) == 1_000_000


def test_a_running_clock_moves_speed_times_faster_than_the_wall() -> None:
    assert clock(speed=60.0).now(wall_ms=50 + 1_000) == 1_000_000 + 60_000


def test_advance_moves_whole_candles() -> None:
    c = clock()
    assert c.advance(3, wall_ms=60) == 1_000_000 + 3 * FIVE_MINUTES_MS


def test_the_clock_stops_at_the_end_of_the_data() -> None:
    c = clock(speed=1e6)
    assert c.now(wall_ms=10_000) == 10_000_000
    assert clock().advance(1_000_000, wall_ms=60) == 10_000_000


def test_the_clock_refuses_to_go_back() -> None:
    with pytest.raises(InvalidRequest):
        clock().set_time(999_999, wall_ms=60)


def test_a_new_speed_keeps_the_time_reached() -> None:
    c = clock(speed=10.0)
    c.set_speed(0.0, wall_ms=150)
    assert c.now(wall_ms=10_000) == 1_000_000 + 1_000
