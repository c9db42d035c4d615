"""A stand-in for a transaction-mode pooler's one trap: it refuses named prepared statements.

Supavisor in transaction mode (and PgBouncer without ``max_prepared_statements``) hands each transaction
whatever server connection is free, so a statement prepared in one transaction is missing in the next.
This TCP proxy on 127.0.0.1 forwards the PostgreSQL wire protocol untouched, except that a ``Parse``
message naming its statement (what psycopg sends once a query ran ``prepare_threshold`` times on a
connection) is answered with an ``ErrorResponse`` (SQLSTATE 26000, as a missing prepared statement is)
and the connection is closed. Unnamed statements, which every ordinary ``execute`` uses, pass.

It counts what it saw, so a test can assert that a database layer sent no named statement at all.
It answers ``N`` to an ``SSLRequest`` or ``GSSENCRequest``: the client then speaks in the clear, as
it may to a local server.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from lib.db.session import Database

#: The two ways the database layer is run by the modules that test it (see :func:`pool_for`).
POOLS = ["direct", "transaction_pooler"]

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


@dataclass
class ProxyCounts:
    """What the proxy saw since it started."""

    connections: int = 0
    unnamed_parses: int = 0
    named_parses: int = 0


def _error_response(message: str) -> bytes:
    fields = b"SERROR\x00VERROR\x00C26000\x00M" + message.encode() + b"\x00\x00"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


class _Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.counts = ProxyCounts()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            startup = await self._startup(reader, writer)
            if startup is None:
                return
            up_writer.write(startup)
            await up_writer.drain()
            back = asyncio.create_task(self._pipe(up_reader, writer))
            try:
                await self._client_messages(reader, writer, up_writer)
            finally:
                back.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _startup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        # The startup packet has no type byte; encryption requests come first and are declined.
        for _ in range(3):
            head = await reader.readexactly(8)
            length, code = struct.unpack("!II", head)
            if code in (_SSL_REQUEST, _GSSENC_REQUEST) and length == 8:
                writer.write(b"N")
                await writer.drain()
                continue
            return head + await reader.readexactly(length - 8)
        return None

    async def _client_messages(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: asyncio.StreamWriter
    ) -> None:
        while True:
            kind = await reader.readexactly(1)
            length = struct.unpack("!I", await reader.readexactly(4))[0]
            body = await reader.readexactly(length - 4)
            if kind == b"P":
                name = body.split(b"\x00", 1)[0]
                if name:
                    self.counts.named_parses += 1
                    refusal = f'prepared statement "{name.decode()}" (transaction pooler)'
                    writer.write(_error_response(refusal))
                    await writer.drain()
                    return
                self.counts.unnamed_parses += 1
            up.write(kind + struct.pack("!I", length) + body)
            await up.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass


@dataclass
class RunningProxy:
    """A running proxy: the URL to use instead of the server's, and its counts."""

    url: str
    counts: ProxyCounts


@contextmanager
def transaction_pooler(database_url: str) -> Iterator[RunningProxy]:
    """Run the proxy in front of ``database_url``'s server, in a thread; yields the URL through it."""
    parts = urlsplit(database_url)
    proxy = _Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def serve() -> None:
        holder["server"] = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        started.set()

    thread = threading.Thread(target=loop.run_forever, name="pooler-proxy", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=10)
    started.wait(timeout=10)
    port = holder["server"].sockets[0].getsockname()[1]
    netloc = parts.netloc.rsplit("@", 1)
    host_port = f"127.0.0.1:{port}"
    new_netloc = f"{netloc[0]}@{host_port}" if len(netloc) == 2 else host_port
    try:
        yield RunningProxy(urlunsplit(parts._replace(netloc=new_netloc)), proxy.counts)
    finally:

        async def stop() -> None:
            holder["server"].close()
            await holder["server"].wait_closed()
            # Connections still open (a pool not closed yet) end here, not as pending tasks at exit.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def pool_for(request: pytest.FixtureRequest, direct: Database) -> Database:
    """The pool a test parametrized over :data:`POOLS` runs on: the direct one, or through the pooler
    (the ``pooled_db`` fixture)."""
    if request.param == "direct":
        return direct
    pooled: Database = request.getfixturevalue("pooled_db")
    return pooled
