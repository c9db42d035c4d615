"""Issue 9, items 6 and 7: clients that leave, and clients that never finish, over raw sockets.

A raw socket is the only way to send half a request. Every wait here is bounded: a socket timeout,
and a deadline on the loops that poll the log.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from lib.app.context import Context, Services
from lib.app.wiring import close_services, open_services
from lib.config import Settings
from lib.http.app import FunctionsApp
from lib.http.protocol import MAX_HEADER_BYTES, DeadlineProtocol
from lib.http.server import create_functions_app, serve_in_thread, uvicorn_config
from lib.http.spec import FunctionSpec, Request, Response
from tests.functions.test_adapter import LogLines, adapter_log

SIGNALS = "/functions/v1/signals-api"
SHORT_TIMEOUT_S = 1.0
# Generous against a loaded machine, still far below "forever".
WAIT_S = 10.0


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=WAIT_S)
    sock.settimeout(WAIT_S)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _wait_for(log: LogLines, event: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        lines = [json.loads(raw) for raw in log.lines]
        if any(line["event"] == event for line in lines):
            return lines
        time.sleep(0.02)
    raise AssertionError(f"no {event} line within {WAIT_S} s: {log.lines[-5:]}")


# Item 6: a client that drops mid-body.


def test_a_client_that_drops_mid_body_is_logged_at_info_not_as_a_500(functions_url: str) -> None:
    with adapter_log() as log:
        sock = _connect(functions_url)
        sock.sendall(
            f"POST {SIGNALS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n".encode()
            + b'{"action": "list", "sym'
        )
        sock.close()
        lines = _wait_for(log, "function_call")
    (gone,) = [line for line in lines if line["event"] == "client_disconnected"]
    assert gone["level"] == "info"
    assert gone["function"] == "signals-api"
    (call,) = [line for line in lines if line["event"] == "function_call"]
    assert call["status"] == 499
    assert not [line for line in lines if line["level"] == "error"]
    assert not [line for line in lines if line["event"] == "unhandled_error"]


# Item 7: a request that never finishes arriving is cut off.


class _Ping(Request):
    pass


class _Pong(Response):
    ok: bool = True


async def _pong(_request: _Ping, _ctx: Context) -> _Pong:
    return _Pong()


@pytest.fixture(scope="module")
def short_timeout_url(settings: Settings) -> Iterator[str]:
    """A functions server whose requests have SHORT_TIMEOUT_S to arrive."""
    spec = FunctionSpec(name="ping", summary="pong", request_type=_Ping, response_type=_Pong, handler=_pong)

    async def services() -> Services:
        return await open_services(settings)

    app = FunctionsApp(
        {"ping": spec},
        services,
        close_services,
        jwt_secret=settings.jwt_secret.reveal(),
        verify_jwt={"ping": False},
        read_timeout_s=SHORT_TIMEOUT_S,
    )
    with serve_in_thread(app.build()) as url:
        yield url


def _closed_after(sock: socket.socket) -> tuple[float, bytes]:
    started = time.monotonic()
    received = _read_until_closed(sock)
    return time.monotonic() - started, received


def test_a_connection_that_sends_nothing_is_closed(short_timeout_url: str) -> None:
    with _connect(short_timeout_url) as sock:
        waited, received = _closed_after(sock)
    assert received == b""
    assert waited < WAIT_S


def test_partial_headers_get_a_408_in_the_envelope_and_the_connection_closed(short_timeout_url: str) -> None:
    with adapter_log() as log, _connect(short_timeout_url) as sock:
        sock.sendall(b"POST /functions/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        waited, received = _closed_after(sock)
        _wait_for(log, "request_timed_out")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert SHORT_TIMEOUT_S * 0.5 < waited < WAIT_S


def test_headers_dripped_a_byte_at_a_time_do_not_push_the_deadline_back(short_timeout_url: str) -> None:
    # 200 header bytes at 20 a second would take 10 s; the deadline counts from the first byte.
    request = b"POST /functions/v1/ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    answer = None
    with _connect(short_timeout_url) as sock:
        sock.settimeout(0.05)  # the client's pace: one byte, then 50 ms listening for the server
        started = time.monotonic()
        for byte in request:
            sock.sendall(bytes([byte]))
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
        stopped = time.monotonic() - started
    assert answer is not None, "the server let the whole dripped request in"
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert stopped < SHORT_TIMEOUT_S * 3


def test_a_partial_body_is_cut_off_and_logged_at_info(short_timeout_url: str) -> None:
    with adapter_log() as log, _connect(short_timeout_url) as sock:
        sock.sendall(
            b"POST /functions/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        waited, _received = _closed_after(sock)
        lines = _wait_for(log, "function_call")
    assert SHORT_TIMEOUT_S * 0.5 < waited < WAIT_S
    events = {line["event"]: line for line in lines}
    assert events["request_timed_out"]["phase"] == "body"
    assert events["client_disconnected"]["level"] == "info"
    assert not [line for line in lines if line["level"] == "error"]


def test_a_kept_alive_connection_that_starts_a_second_request_and_stalls_is_closed(
    short_timeout_url: str,
) -> None:
    with _connect(short_timeout_url) as sock:
        sock.sendall(b"POST /functions/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        first = b""
        while b'{"ok":true}' not in first:
            chunk = sock.recv(65536)
            assert chunk, "closed before the first answer"
            first += chunk
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"POST /functions/v1/ping HTTP/1.1\r\nHo")
        waited, received = _closed_after(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert waited < WAIT_S


async def test_a_request_that_arrives_in_time_is_served_normally(short_timeout_url: str) -> None:
    def call() -> bytes:
        with _connect(short_timeout_url) as sock:
            sock.sendall(
                b"POST /functions/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                b"Connection: close\r\n\r\n{}"
            )
            return _read_until_closed(sock)

    answers = await asyncio.gather(*(asyncio.to_thread(call) for _ in range(5)))
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)


def test_the_server_is_built_with_the_configured_deadline(settings: Settings) -> None:
    # The stack's server (lib/ops/stack_runner.py) calls uvicorn_config(app, host, port): the deadline
    # comes from the settings the app was built with, 10 s unless AITRADEX_HTTP_READ_TIMEOUT_S says else.
    configured = replace(settings, http=replace(settings.http, read_timeout_s=2.5))
    config = uvicorn_config(create_functions_app(configured), "127.0.0.1", 0)
    assert isinstance(config.http, type)
    assert issubclass(config.http, DeadlineProtocol)
    assert config.http.read_timeout_s == 2.5
    assert config.proxy_headers is False
    default = uvicorn_config(create_functions_app(settings), "127.0.0.1", 0)
    assert default.http.read_timeout_s == settings.http.read_timeout_s == 10.0  # type: ignore[union-attr]


def test_headers_larger_than_the_limit_get_a_431_in_the_envelope(short_timeout_url: str) -> None:
    first = b"POST /functions/v1/ping HTTP/1.1\r\nHost: x\r\n"
    pad = b"X-Pad: " + b"p" * 991 + b"\r\n"  # 1,000 bytes a line
    # Just past the limit and no further: bytes sent after the server closes could reset the connection.
    lines = -(-(MAX_HEADER_BYTES + 1 - len(first)) // len(pad))
    with _connect(short_timeout_url) as sock:
        sock.sendall(first + pad * lines)
        received = _read_until_closed(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body)["error"]["code"] == "headers_too_large"


def test_a_token_sized_header_is_well_within_the_limit(short_timeout_url: str) -> None:
    with _connect(short_timeout_url) as sock:
        sock.sendall(
            b"POST /functions/v1/ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 16_000 + b"\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        received = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200 ")
