"""The stack's ports, one rule for every way it starts.

- No port asked (``None``): the documented default. If something else already listens there, any free
  port instead, and a note that says so (``aitradex up`` prints it, the rebuild's step line shows it).
- ``0``: any free port.
- Any other number: exactly that port, or a clear error if it is taken. A port asked for by name is
  never silently replaced.

The socket is bound here and handed to the server as it is, so the port printed and recorded in
``stack.json`` is the one that answers: nothing can take it between choosing and listening. Whatever
happened, ``aitradex status -o env`` prints the URLs the running stack really has.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from lib.errors import ConfigError

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Listener:
    """A bound, not yet listening, TCP socket on ``HOST`` and what to tell the user about its port."""

    sock: socket.socket
    port: int
    note: str | None


def _bind(port: int) -> socket.socket:
    # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every keep-alive answer waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_port(what: str, requested: int | None, default: int) -> Listener:
    """Bind the port for ``what`` ("functions", "paper exchange") by the rule in the module docstring."""
    if requested is not None and not 0 <= requested <= 65535:
        raise ConfigError(f"the {what} port must be between 0 and 65535, got {requested}")
    wanted = default if requested is None else requested
    try:
        sock = _bind(wanted)
    except OSError as exc:
        if requested is not None:
            raise ConfigError(f"cannot listen on {HOST}:{wanted} for the {what}: {exc.strerror}") from None
        sock = _bind(0)
        port = int(sock.getsockname()[1])
        return Listener(sock, port, f"the {what} port {default} is busy: using {port} instead")
    return Listener(sock, int(sock.getsockname()[1]), None)
