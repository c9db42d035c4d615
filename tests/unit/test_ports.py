"""The stack's port rule: a default falls back when busy (and says so), 0 is any port, a number is exact."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from lib.errors import ConfigError
from lib.ops.ports import bind_port


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_free_default_is_used_as_it_is(busy_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    listener = bind_port("functions", None, free)
    with listener.sock:
        assert (listener.port, listener.note) == (free, None)


def test_a_busy_default_falls_back_to_a_free_port_and_says_so(busy_port: int) -> None:
    listener = bind_port("functions", None, busy_port)
    with listener.sock:
        assert listener.port != busy_port
        assert listener.sock.getsockname()[1] == listener.port
        assert listener.note == f"the functions port {busy_port} is busy: using {listener.port} instead"


def test_zero_means_any_free_port(busy_port: int) -> None:
    listener = bind_port("paper exchange", 0, busy_port)
    with listener.sock:
        assert listener.port not in (0, busy_port)
        assert listener.note is None


def test_a_busy_port_asked_for_by_number_is_an_error_not_a_silent_change(busy_port: int) -> None:
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{busy_port} for the paper exchange"):
        bind_port("paper exchange", busy_port, 54330)


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="between 0 and 65535"):
        bind_port("functions", 70000, 54321)
