"""Issue 12, item 6: the functions server with two worker processes, and what each keeps in memory.

Each server here is the real thing (:func:`lib.http.workers.running_workers`: uvicorn's supervisor, two
spawned workers on one socket). A test cannot pick the worker that answers, so it opens a bounded
number of connections one after another (the kernel hands each to a worker), checks through ``/proc``
that both workers hold some of them, and asserts on every answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lib.config import Settings
from lib.db.session import Caller, Database
from lib.http.workers import WorkerSpec, running_workers, worker_ip_share
from lib.ops.stack_replay import replay_start_ms, stack_symbols
from lib.paper_exchange.config import PaperExchangeConfig
from lib.paper_exchange.ratelimit import ExchangeLimits
from lib.paper_exchange.server import running_paper_exchange
from lib.services.auth.signing import SigningKey
from lib.services.auth.users import LocalUser
from lib.services.execution.halt import set_trading_halted
from tests.functions.auth_helpers import auth_settings

WORKERS = 2
#: The anonymous summary's TTL (lib/app/wiring.py: HealthCache(ttl_s=5.0)).
HEALTH_TTL_S = 5.0
#: The test exchange's per-IP limit (Bybit's is 600 per 5 s) and the host share its server keeps to.
IP_LIMIT, IP_WINDOW_S, HOST_SHARE = 40, 5.0, 0.75
REQUESTS = 36
READ_TIMEOUT_S = 1.0
OPERATOR = Caller(
    role="service_role", claims={"role": "service_role"}, headers={"user-agent": "workers-test"}
)
Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def _port(url: str) -> int:
    return int(urlsplit(url).port or 80)


def serving_pids(port: int) -> set[int]:
    """The processes holding the server side of an established connection on ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids: set[int] = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    pids.add(int(fd_dir.parent.name))
                    break
            except OSError:
                continue
    return pids


async def spread(url: str, n: int, send: Send) -> tuple[list[httpx.Response], set[int]]:
    """``n`` connections opened one after another, then one request on each, all at once.

    Returns every answer, and the pids of the processes that held the connections.
    """
    clients: list[httpx.AsyncClient] = []
    try:
        for _ in range(n):
            client = httpx.AsyncClient(base_url=url, timeout=60)
            clients.append(client)
            assert (await client.get("/health")).status_code == 200  # accepted by a worker, kept alive
        pids = serving_pids(_port(url))
        answers = await asyncio.gather(*(send(c) for c in clients))
        return list(answers), pids
    finally:
        for client in clients:
            await client.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def limited_exchange_url() -> Iterator[str]:
    """A paper exchange of this module's own, with a per-IP limit of 40 requests per 5 s."""
    limits = ExchangeLimits(ip_requests=IP_LIMIT, ip_window_s=IP_WINDOW_S, ip_ban_s=60.0)
    config = PaperExchangeConfig(
        symbols=stack_symbols(), state_path=None, port=0, start_time_ms=replay_start_ms(), limits=limits
    )
    with running_paper_exchange(config) as url:
        yield url


@pytest.fixture(scope="module")
def workers_url(settings: Settings, paper_exchange_url: str) -> Iterator[str]:
    """Two workers, their auth limited to 5 sign-ins per address a day."""
    limited = auth_settings(settings, rate_limit_ip=5, rate_limit_email=1000, rate_window_s=86_400)
    with running_workers(WorkerSpec(settings=limited, paper_url=paper_exchange_url), WORKERS) as url:
        yield url


@pytest.fixture(scope="module")
def ip_workers(limited_exchange_url: str, settings: Settings) -> Iterator[str]:
    """Two workers on the limited exchange, the host's share of its budget split between them."""
    spec = WorkerSpec(
        settings=settings,
        paper_url=limited_exchange_url,
        endpoints={env: limited_exchange_url for env in ("mainnet", "testnet", "demo")},
        ip_share=worker_ip_share(HOST_SHARE, WORKERS),
        ip_limit=IP_LIMIT,
        ip_window_s=IP_WINDOW_S,
    )
    with running_workers(spec, WORKERS) as url:
        yield url


@pytest.fixture
async def resumed(db: Database) -> Any:
    """Trading is enabled again afterwards, whatever the test did (the switch is global)."""
    yield
    await set_trading_halted(db, OPERATOR, halted=False, reason=None, by="test", now=datetime.now(UTC))


async def test_a_halt_is_in_every_workers_anonymous_summary_within_the_ttl(
    workers_url: str, db: Database, resumed: None
) -> None:
    def summary(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return client.post("/functions/v1/diagnostics", json={})

    # Both workers now hold a report that says trading is enabled.
    before, pids = await spread(workers_url, 12, summary)
    assert len(pids) == WORKERS
    assert [a.json()["trading_halted"] for a in before] == [False] * 12

    await set_trading_halted(
        db, OPERATOR, halted=True, reason="workers test", by="test", now=datetime.now(UTC)
    )
    # The stated bound, not a hope: no answer may be older than the TTL once it has passed.
    await asyncio.sleep(HEALTH_TTL_S + 0.1)

    after, pids = await spread(workers_url, 12, summary)
    assert len(pids) == WORKERS
    assert [a.status_code for a in after] == [200] * 12
    assert [a.json()["trading_halted"] for a in after] == [True] * 12


async def test_the_sign_in_limit_per_address_holds_whichever_worker_answers(
    workers_url: str, anon_key: str
) -> None:
    # 5 attempts a day per address: of 12 from one address, across both workers, exactly 5 get through.
    n = uuid.uuid4().int
    address = f"10.{n % 256}.{(n >> 8) % 256}.{(n >> 16) % 254 + 1}"

    def attempt(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return client.post(
            "/auth/v1/token?grant_type=password",
            json={"email": f"w-{uuid.uuid4().hex[:10]}@test.local", "password": "wrong horse 1"},
            headers={"apikey": anon_key, "X-Forwarded-For": address},
        )

    answers, pids = await spread(workers_url, 12, attempt)

    assert len(pids) == WORKERS
    assert sorted(a.status_code for a in answers) == [400] * 5 + [429] * 7


async def test_the_workers_ip_limiters_together_keep_inside_the_hosts_share(
    ip_workers: str, limited_exchange_url: str, make_user: Callable[[], LocalUser]
) -> None:
    # Each candles request is one klines call. The host keeps to 75% of the exchange's 40 per 5 s: 30,
    # 15 a worker. So of 36 requests at once over both workers at most 30 can be answered within 5 s
    # of the first (a worker's 16th grant waits for its 1st to leave the window), and the exchange
    # sees at most 36 (<= 40) in any window: no ban. Had each worker the host's whole share (30), all
    # 36 would go at once.
    token = make_user().token
    body = {"action": "candles", "symbol": "BTCUSDT", "timeframe": "5", "limit": 5}
    started = time.monotonic()

    async def candles(client: httpx.AsyncClient) -> httpx.Response:
        nonlocal started
        started = min(started, time.monotonic())
        answer = await client.post("/functions/v1/signals-api", json=body, headers=bearer(token))
        answer.extensions["answered_after_s"] = time.monotonic() - started
        return answer

    started = math.inf
    answers, pids = await spread(ip_workers, REQUESTS, candles)

    async with httpx.AsyncClient() as plain:
        stats = (await plain.get(f"{limited_exchange_url}/_paper/stats")).json()
    assert len(pids) == WORKERS
    assert [a.status_code for a in answers] == [200] * REQUESTS
    assert all(len(a.json()["candles"]) == 5 for a in answers)
    quick = [a for a in answers if a.extensions["answered_after_s"] < IP_WINDOW_S]
    assert len(quick) <= int(HOST_SHARE * IP_LIMIT)
    assert (stats["ip_refused_403"], stats["ip_bans"]) == (0, 0)


# --- The read deadline (lib/http/protocol.py) in the worker processes: it reaches them by pickle.


@pytest.fixture(scope="module")
def short_timeout_url(settings: Settings, paper_exchange_url: str) -> Iterator[str]:
    quick = dataclasses.replace(
        settings, http=dataclasses.replace(settings.http, read_timeout_s=READ_TIMEOUT_S)
    )
    with running_workers(WorkerSpec(settings=quick, paper_url=paper_exchange_url), WORKERS) as url:
        yield url


def _accepted(url: str) -> socket.socket:
    """A connection a worker has accepted: it answered one request on it, and keeps it alive.

    Connecting alone would not do: a burst of connects can all land before any worker looks.
    """
    sock = socket.create_connection(("127.0.0.1", _port(url)), timeout=10)
    sock.settimeout(10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    while b'"status":"ok"' not in first:
        chunk = sock.recv(65536)
        assert chunk, "closed before the first answer"
        first += chunk
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[float, bytes]:
    started, received = time.monotonic(), b""
    while chunk := sock.recv(65536):
        received += chunk
    return time.monotonic() - started, received


def test_every_worker_cuts_off_partial_headers_with_a_408_after_the_configured_timeout(
    short_timeout_url: str,
) -> None:
    socks = [_accepted(short_timeout_url) for _ in range(10)]
    try:
        pids = serving_pids(_port(short_timeout_url))
        for sock in socks:
            sock.sendall(b"POST /functions/v1/signals-api HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        results = [_read_until_closed(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert len(pids) == WORKERS
    for waited, received in results:
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert json.loads(body)["error"]["code"] == "request_timeout"
        # 1 s, not the 10 s default: the worker got the configured timeout.
        assert waited < READ_TIMEOUT_S * 4


def test_every_worker_cuts_off_a_partial_body_after_the_configured_timeout(short_timeout_url: str) -> None:
    socks = [_accepted(short_timeout_url) for _ in range(10)]
    try:
        pids = serving_pids(_port(short_timeout_url))
        for sock in socks:
            sock.sendall(
                b"POST /functions/v1/signals-api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
        results = [_read_until_closed(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert len(pids) == WORKERS
    for waited, received in results:
        assert received == b""  # closed, no answer: the handler saw the client gone
        assert waited < READ_TIMEOUT_S * 4


# --- JWKS: each worker caches the project's key set; a rotation reaches every worker by itself.


class RotatingProject:
    """A hosted project's JWKS endpoint whose key set the test replaces (a key rotation)."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = [new_signing_key()]
        self.fetches = 0
        self._lock = threading.Lock()

    def document(self) -> bytes:
        with self._lock:
            self.fetches += 1
            return json.dumps({"keys": [key.public_jwk for key in self.keys]}).encode()


def new_signing_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey.from_pem(pem.decode())


@pytest.fixture(scope="module")
def project() -> Iterator[tuple[str, RotatingProject]]:
    rotating = RotatingProject()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/auth/v1/.well-known/jwks.json":
                self.send_error(404)
                return
            document = rotating.document()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", rotating
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def hosted_url(settings: Settings, project: tuple[str, RotatingProject]) -> Iterator[str]:
    # An unknown kid may refetch at once (0 s): the rotation below must not wait out the rate limit.
    auth = dataclasses.replace(settings.auth, supabase_url=project[0], signing_key=None, jwks_min_refresh_s=0)
    with running_workers(WorkerSpec(settings=dataclasses.replace(settings, auth=auth)), WORKERS) as url:
        yield url


def _claims(user_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user_id, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 600}


async def test_a_key_rotation_is_seen_by_every_worker(
    hosted_url: str, project: tuple[str, RotatingProject], make_user: Callable[[], LocalUser]
) -> None:
    _url, rotating = project
    user = make_user()

    def preferences(token: str) -> Send:
        def send(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
            return client.post(
                "/functions/v1/trading-preferences", json={"action": "get"}, headers=bearer(token)
            )

        return send

    first = rotating.keys[0].sign(_claims(user.id))
    answers, pids = await spread(hosted_url, 10, preferences(first))
    assert len(pids) == WORKERS
    assert [a.status_code for a in answers] == [200] * 10

    rotating.keys = [new_signing_key()]  # the project rotates: a new kid, the old key gone
    fetched = rotating.fetches
    rotated = rotating.keys[0].sign(_claims(user.id))
    answers, pids = await spread(hosted_url, 10, preferences(rotated))

    assert len(pids) == WORKERS
    assert [a.status_code for a in answers] == [200] * 10
    assert all(a.json()["user_id"] == user.id for a in answers)
    # Each worker fetched the new set itself on the unknown kid (at least once each, and not per request).
    assert WORKERS <= rotating.fetches - fetched <= 10
