"""uvicorn's HTTP protocol with a read deadline: a request arrives in full in bounded time, or never.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) only after a response, and has
no timeout at all for a connection that sends nothing, half a request line, headers without their
end, or a body slower than it announced. With ``limit_concurrency`` at 1,000, a thousand such
sockets would lock everyone out.

So every connection carries one deadline of ``read_timeout_s``. It is armed when the connection
opens and whenever bytes start a new request after a response, and is disarmed when a request has
fully arrived. It is never pushed back by more bytes, so dripping one byte a second does not help.
The timeout is the class's ``read_timeout_s`` (:func:`deadline_protocol`), or the one a
:class:`ServerConfig` carries: that is how it reaches the worker processes of :mod:`lib.http.workers`,
which get the configuration by pickle (a class made at run time does not pickle).
When it fires:

- nothing has arrived (an idle connection, or one kept alive): the connection is closed;
- the headers are incomplete: a 408 in the JSON error envelope, then the connection is closed;
- the body is incomplete: the connection is closed, and the request's handler sees the client gone
  (logged as ``client_disconnected``, at INFO).

The headers are bounded in size too (``MAX_HEADER_BYTES``; httptools has no limit of its own): past
it, a 431 in the envelope, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from lib.log import log_event

logger = logging.getLogger("aitradex.http")
# Eight times the largest token we accept; nginx's default is 32 KiB.
MAX_HEADER_BYTES = 64 * 1024


def _envelope(status: bytes, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer with the JSON error envelope, closing the connection."""
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}, separators=(",", ":"))
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
    )


_TIMEOUT = _envelope(b"408 Request Timeout", "request_timeout", "the request did not arrive in time")
_HEADERS_TOO_LARGE = _envelope(
    b"431 Request Header Fields Too Large",
    "headers_too_large",
    f"the request's headers are larger than {MAX_HEADER_BYTES} bytes",
)


class ServerConfig(Config):
    """uvicorn's configuration plus the read timeout, for :class:`DeadlineProtocol` in any process."""

    def __init__(self, app: Any, *, read_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, http=DeadlineProtocol, **kwargs)
        self.read_timeout_s = read_timeout_s


class DeadlineProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes a connection whose request does not arrive in time."""

    read_timeout_s: float = 10.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if isinstance(config, ServerConfig):
            self.read_timeout_s = config.read_timeout_s
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes after a response start the next request's clock (uvicorn's keep-alive timer stops here).
        self._arm()
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            # Still inside the headers after this chunk: all of it was header bytes.
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                log_event(logger, "headers_too_large", limit=MAX_HEADER_BYTES)
                self.transport.write(_HEADERS_TOO_LARGE)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._arm()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        active = self.cycle is not None and not self.cycle.response_complete
        if self.pipeline or (active and not self.cycle.more_body):
            # A complete request is being answered (the bytes that armed the clock are the next,
            # pipelined one): its handler has its own time; check again later.
            self._arm()
            return
        if self._reading_headers and not active:
            phase = "headers"
            self.transport.write(_TIMEOUT)
        elif active:
            phase = "body"
        else:
            phase = "idle"
        if phase != "idle":
            log_event(logger, "request_timed_out", phase=phase, timeout_s=self.read_timeout_s)
        self.transport.close()


def deadline_protocol(read_timeout_s: float) -> type[DeadlineProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this read timeout."""
    return type("DeadlineProtocol", (DeadlineProtocol,), {"read_timeout_s": read_timeout_s})
