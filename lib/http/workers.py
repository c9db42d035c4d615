"""The functions server as several worker processes on one port.

The server is uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``), chosen by measuring it
against gunicorn with uvicorn's worker class and against granian (README, "Functions server"): it
runs our :class:`lib.http.protocol.DeadlineProtocol` unchanged, restarts a worker that dies, and adds
no dependency. Each worker is a spawned process with its own event loop, database pool and exchange
clients, built from a :class:`WorkerSpec` that reaches it by pickle. Each worker listens on a socket
of its own on the shared port (``SO_REUSEPORT``), and the kernel spreads new connections over them
(:func:`listen_reuse_port`).

What a worker keeps in memory, and why that stays correct with several of them:

- the anonymous diagnostics summary (``HealthCache``): per worker, on purpose. A report is reused for
  at most its TTL counted from when its run *started*, so whichever worker answers, a change older
  than the TTL is in the answer (:class:`lib.services.diagnostics.HealthCache`);
- the auth rate limits: not in memory, they are rows in Postgres (``auth_rate_limits``), so they hold
  across workers and hosts;
- the exchange IP limiter: one per process, so the host's share of Bybit's per-IP budget is divided
  among the processes that call the exchange (:func:`worker_ip_share`): together they stay inside it;
- the JWK Set (:class:`lib.services.auth.jwks.JwksCache`): per worker; a token with an unknown ``kid``
  makes the worker that sees it refetch (rate-limited), so a rotation reaches every worker by itself;
- the wallet and instrument caches: short-lived copies of exchange and database state with TTLs, the
  same in every worker as in every host; none is a source of truth.

A worker whose parent dies is stopped by the kernel (``PR_SET_PDEATHSIG``), so a killed stack never
leaves workers serving on its port.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.supervisors import multiprocess
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from lib.config import Settings
from lib.errors import AitradexError
from lib.exchange.rate_limit import BYBIT_IP_LIMIT, BYBIT_IP_WINDOW_S, DEFAULT_SHARE, RateLimiter
from lib.http.app import error_response
from lib.http.protocol import ServerConfig

#: The share of the host's IP budget that the workers get together, when a scheduler process (scans,
#: fan-out, tracking: nearly all exchange traffic) runs beside them and keeps the rest. Workers call
#: the exchange only for what a user asks (connecting keys, a close by hand, diagnostics' probe).
WORKERS_IP_FRACTION = 0.25
#: How long a worker may take to start serving (imports, the database pool) before it counts as failed.
WORKER_START_TIMEOUT_S = 60.0
#: A forwarded call (the scheduler's tick with ``wait``) may run a whole pipeline.
FORWARD_TIMEOUT_S = 600.0
_PR_SET_PDEATHSIG = 1


def worker_ip_share(host_share: float, workers: int, *, fraction: float = 1.0) -> float:
    """Each worker's share of Bybit's per-IP budget: ``fraction`` of the host's share, split evenly.

    The limiters of ``workers`` processes on one IP then grant at most ``host_share * fraction`` of the
    budget together, in any window: each one's capacity is floored (:class:`RateLimiter`).
    """
    if workers < 1:
        raise AitradexError("a server needs at least one worker")
    return host_share * fraction / workers


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process builds its app from (it is pickled to the worker).

    - ``paper_url`` / ``endpoints``: where the exchange clients go (None: Bybit, as the settings say);
    - ``ip_share``: this worker's share of the per-IP budget (:func:`worker_ip_share`), of ``ip_limit``
      requests per ``ip_window_s`` seconds;
    - ``forward_url`` and ``forward_paths``: paths served by another process (the stack's scheduler),
      which a worker passes on there with the caller's token.
    """

    settings: Settings
    paper_url: str | None = None
    endpoints: Mapping[str, str] | None = None
    ip_share: float = DEFAULT_SHARE
    ip_limit: int = BYBIT_IP_LIMIT
    ip_window_s: float = BYBIT_IP_WINDOW_S
    forward_url: str | None = None
    forward_paths: tuple[tuple[str, str], ...] = ()
    verify_jwt: Mapping[str, bool] | None = field(default=None)

    def limiter(self) -> RateLimiter:
        """This worker's IP limiter (one per process: the market and the signed calls share it)."""
        return RateLimiter(self.ip_share, limit=self.ip_limit, window_s=self.ip_window_s)


def build_worker_app(spec: WorkerSpec) -> ASGIApp:
    """The functions app of one worker process, wired as :attr:`WorkerSpec` says."""
    from lib.app.wiring import exchange_clients
    from lib.http.server import functions_app

    market, exchange = exchange_clients(
        spec.settings, paper_url=spec.paper_url, limiter=spec.limiter(), endpoints=spec.endpoints
    )
    app = functions_app(spec.settings, exchange=exchange, market=market, verify_jwt=spec.verify_jwt)
    if spec.forward_url is not None:
        for path, method in spec.forward_paths:
            app.add_route(Route(path, _forwarder(spec.forward_url), methods=[method]))
    return app.build()


def _forwarder(base_url: str) -> Callable[[Request], Any]:
    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type")}
        try:
            async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S) as client:
                answer = await client.request(
                    request.method, base_url + request.url.path, content=await request.body(), headers=headers
                )
        except httpx.HTTPError:
            return error_response(AitradexError("the scheduler process does not answer"))
        return Response(
            answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type")
        )

    return forward


class WorkerApp:
    """The ASGI app a worker runs: built inside the worker, on its first call (the lifespan startup)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._app: ASGIApp | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.spec, self._app = state["spec"], None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from lib.log import configure_logging

            _die_with_parent()
            configure_logging()
            self._app = build_worker_app(self.spec)
        await self._app(scope, receive, send)


def _die_with_parent() -> None:
    """Ask the kernel to stop this worker when the supervisor dies, however it dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's own shutdown still stops workers
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _WorkerProcess(Process):
    """A uvicorn worker that listens on a socket of its own, on the shared port (``SO_REUSEPORT``)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover - child
        super().target([listen_reuse_port(self.config.host, self.config.port, self.config.backlog)])


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, whose workers listen each on their own socket, and which says when all serve."""

    def __init__(self, config: ServerConfig, ready: Callable[[], None]) -> None:
        super().__init__(config, [])
        self._ready = ready

    def init_processes(self) -> None:
        super().init_processes()
        if all(p.wait_until_ready(WORKER_START_TIMEOUT_S, self.should_exit) for p in self.processes):
            self._ready()


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to ``host:port`` with ``SO_REUSEPORT``: the port is ours, and the
    workers' listening sockets can join it. Keep it open while they serve; it never takes a connection.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listen_reuse_port(host: str, port: int, backlog: int) -> socket.socket:
    """One worker's listening socket on the shared port.

    Why not the one socket uvicorn would pass around: its workers all accept from it, and an event loop
    accepts every pending connection when it wakes, so a burst of connections (a load balancer's pool,
    a load generator) measured 42 to 6 on two workers. With a socket each, the kernel spreads new
    connections over the workers by hash.
    """
    sock = reserve_port(host, port)
    sock.listen(backlog)
    return sock


def worker_config(spec: WorkerSpec, workers: int, host: str, port: int) -> ServerConfig:
    """The uvicorn configuration of ``workers`` processes serving ``spec``'s app on ``host:port``."""
    from lib.http.server import SERVER_OPTIONS

    return ServerConfig(
        WorkerApp(spec),
        read_timeout_s=spec.settings.http.read_timeout_s,
        host=host,
        port=port,
        workers=workers,
        backlog=2048,
        timeout_worker_healthcheck=10,
        **SERVER_OPTIONS,
    )


def serve_workers(
    spec: WorkerSpec, host: str, port: int, workers: int, *, ready: Callable[[], None] = lambda: None
) -> None:
    """Serve on ``host:port`` with ``workers`` processes until SIGINT or SIGTERM.

    The caller holds the port with :func:`reserve_port`. Runs in the main thread (it installs the
    supervisor's signal handlers); ``ready`` is called once every worker serves.
    """
    # uvicorn's supervisor makes (and remakes) its workers from its module's ``Process``; this process
    # is the supervisor and nothing else, so that name is pointed at ours for its lifetime.
    multiprocess.Process = _WorkerProcess  # type: ignore[misc]
    _Supervisor(worker_config(spec, workers, host, port), ready).run()


def _supervise(spec: WorkerSpec, host: str, port: int, workers: int, ready: Any) -> None:
    from lib.log import configure_logging

    configure_logging()
    _die_with_parent()
    # multiprocessing gave this process a /dev/null stdin whose descriptor its own children would not
    # inherit; uvicorn would try to reopen it in each worker.
    sys.stdin = None
    serve_workers(spec, host, port, workers, ready=ready.set)


@contextmanager
def running_workers(
    spec: WorkerSpec, workers: int, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve ``spec`` with ``workers`` processes under a supervisor process of its own (tests, benches).

    Yields the base URL once every worker serves; stops the supervisor (and so its workers) after.
    """
    spawn = multiprocessing.get_context("spawn")
    reserved = reserve_port(host, port)
    host, port = reserved.getsockname()[:2]
    ready = spawn.Event()
    supervisor = spawn.Process(
        target=_supervise, args=(spec, host, port, workers, ready), name="functions-workers"
    )
    supervisor.start()
    try:
        if not _wait(ready, supervisor, WORKER_START_TIMEOUT_S + 30):
            raise AitradexError("the functions server's workers did not start")
        yield f"http://{host}:{port}"
    finally:
        supervisor.terminate()  # SIGTERM: the supervisor stops its workers, then itself
        supervisor.join(timeout=30)
        if supervisor.is_alive():
            supervisor.kill()
            supervisor.join()
        reserved.close()


def _wait(ready: Any, process: Any, timeout_s: float) -> bool:
    """Whether ``ready`` is set within ``timeout_s`` while ``process`` lives (bounded polling)."""
    waited = 0.0
    while waited < timeout_s:
        if ready.wait(0.2):
            return True
        if not process.is_alive():
            return False
        waited += 0.2
    return False
