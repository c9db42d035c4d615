"""Running the local stack's processes: the paper exchange and the functions server.

``aitradex up`` runs them in the foreground until Ctrl-C (or SIGTERM) and then stops cleanly.
``start_detached`` runs the same command in the background (the rebuild and the demo use it),
waits until it answers, and records its pid, URLs and a hash of the code it runs, in
``.aitradex/stack.json``, keyed by database name. A rebuild redeploys only when that code changed.

Ports follow :mod:`lib.ops.ports`: the demo's database (``aitradex``) gets the documented defaults,
54321 and 54330, falling back to free ports (with a note) when they are taken; any other database
(the tests' ``aitradex_test``) gets free ports, so it never competes with the demo for them.

With several functions workers (``AITRADEX_HTTP_WORKERS``, :mod:`lib.http.workers`), the scheduler runs
once, in this parent process, and the workers pass ``/scheduler/*`` on to it.
The module is about 430 lines: it is the one owner of the stack's process lifecycle (start, record,
redeploy, stop), and the scheduler's routes and the workers' start belong to that lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lib.app.context import Services
from lib.config import REPO_ROOT, Settings
from lib.db import wal_receiver
from lib.errors import AitradexError
from lib.http.app import FunctionsApp, error_response
from lib.local_state import read_services, write_services
from lib.log import configure_logging, log_event
from lib.ops import schedules
from lib.ops.ports import Listener, bind_port
from lib.ops.stack_replay import replay_start_ms, stack_symbols
from lib.services.auth.tokens import mint_api_key
from lib.services.scanning.settings import load_scan_settings
from lib.stores import settings as settings_store

DEFAULT_FUNCTIONS_PORT = 54321
DEFAULT_PAPER_PORT = 54330
START_TIMEOUT_S = 60.0
logger = logging.getLogger("aitradex.stack")


@dataclass(frozen=True, slots=True)
class StackUrls:
    """Where the running stack answers."""

    api_url: str
    paper_exchange_url: str

    @property
    def functions_url(self) -> str:
        return f"{self.api_url}/functions/v1"


def code_hash() -> str:
    """A digest of the code a server runs: a rebuild redeploys only when this changes."""
    digest = hashlib.sha256()
    files = sorted([*REPO_ROOT.glob("lib/**/*.py"), *REPO_ROOT.glob("functions/**/*.py")])
    for path in [*files, REPO_ROOT / "supabase" / "config.toml"]:
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie does not: it has exited and only waits to be reaped."""
    try:
        # Reap it if it is our own child (the tests and the demo start the stack themselves).
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def running_facts(settings: Settings) -> dict[str, Any] | None:
    """The recorded facts of a stack that is really running (pid alive and answering), else None."""
    return recorded_running(settings.state_dir, settings.database.db_name)


def recorded_running(state_dir: Path, db_name: str) -> dict[str, Any] | None:
    """:func:`running_facts` from a state folder and a database name (no secrets needed)."""
    facts = read_services(state_dir, db_name)
    pid = facts.get("pid")
    if not pid or not _pid_alive(int(pid)) or not _answers(str(facts.get("api_url", ""))):
        return None
    return facts


def _port_args(settings: Settings) -> list[str]:
    # The demo's database gets the documented ports (or free ones, said so); any other takes free ones.
    if settings.database.db_name == "aitradex":
        return []
    return ["--functions-port", "0", "--paper-port", "0"]


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def attach_scheduler(app: FunctionsApp, *, paper_url: str, tick_driven: bool) -> None:
    """Run the built-in scheduler beside the functions, and serve ``/scheduler/tick`` and ``/status``.

    ``tick_driven``: the paper clock is frozen (speed 0), so time moves only when a driver advances
    it; the driver then calls ``POST /scheduler/tick`` and gets the jobs' outcomes back. Otherwise the
    scheduler polls its clock every second by itself.
    """
    from lib.app.pipeline import build_scheduler
    from lib.app.scheduler import DatabaseElection

    holder: dict[str, Any] = {}

    @asynccontextmanager
    async def run_scheduler(services: Services) -> AsyncIterator[None]:
        environment = await settings_store.environment(services.db)
        scan_settings = await load_scan_settings(services.db)
        scheduler, pipeline = build_scheduler(
            services,
            environment=environment,
            paper_url=paper_url,
            timeframes=scan_settings.timeframes,
            algorithms=scan_settings.algorithms,
        )
        holder.update(scheduler=scheduler, pipeline=pipeline, environment=environment)
        stop = asyncio.Event()
        task = None if tick_driven else asyncio.create_task(scheduler.run_forever(stop))
        # One scheduler per tick takes the backup, however many stacks run on the database.
        backups = schedules.backup_scheduler(
            services.settings, election=DatabaseElection(services.db, pipeline.host.host_id)
        )
        backup_task = asyncio.create_task(backups.run_forever(stop, poll_s=30.0)) if backups else None
        log_event(
            logger,
            "scheduler_started",
            environment=environment,
            tick_driven=tick_driven,
            jobs=[j.name for j in scheduler.jobs],
        )
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            if backup_task is not None:
                await backup_task
            # A clean stop hands this host's scan share to the others now, not when its lease ends.
            with contextlib.suppress(AitradexError):
                await pipeline.drop_lease()

    async def tick(request: Request) -> Response:
        try:
            app.require_service_role(request)
            report = await holder["scheduler"].tick(wait=True)
        except AitradexError as exc:
            return error_response(exc)
        return JSONResponse(
            {
                "market_ms": report.market_ms,
                "started": list(report.started),
                "skipped": list(report.skipped),
                "led_elsewhere": list(report.led_elsewhere),
                "outcomes": report.outcomes,
            }
        )

    async def status(request: Request) -> Response:
        try:
            app.require_service_role(request)
        except AitradexError as exc:
            return error_response(exc)
        scheduler = holder["scheduler"]
        jobs = {
            job.name: dict(zip(("runs", "failures", "skips"), scheduler.stats(job.name), strict=True))
            for job in scheduler.jobs
        }
        body = {"environment": holder["environment"], "tick_driven": tick_driven, "jobs": jobs}
        return JSONResponse({**body, "running": list(scheduler.running())})

    app.add_hook(run_scheduler)
    app.add_route(Route("/scheduler/tick", tick, methods=["POST"]))
    app.add_route(Route("/scheduler/status", status, methods=["GET"]))


def run_foreground(
    settings: Settings,
    *,
    functions_port: int | None = None,
    paper_port: int | None = None,
    speed: float = 0.0,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the paper exchange (in a thread) and the functions server (here) until a stop signal.

    Ports follow :func:`lib.ops.ports.bind_port` (None: the default or a free one; 0: any free one).
    Both are bound before anything is announced, so ``announce`` receives the URLs that answer, and
    a note for each default that was busy.
    """
    functions = bind_port("functions", functions_port, DEFAULT_FUNCTIONS_PORT)
    try:
        paper_listener = bind_port("paper exchange", paper_port, DEFAULT_PAPER_PORT)
    except BaseException:
        functions.sock.close()
        raise
    # The WAL receiver runs as long as the stack does (lib.db.wal_receiver): streamed WAL, RPO < 1 s.
    with wal_receiver.supervised(settings):
        _serve(settings, functions, paper_listener, speed, announce or (lambda line: None))


def _serve(
    settings: Settings,
    functions_listener: Listener,
    paper_listener: Listener,
    speed: float,
    announce: Callable[[str], None],
) -> None:
    from lib.app.wiring import exchange_clients
    from lib.exchange.rate_limit import DEFAULT_SHARE, RateLimiter
    from lib.http.server import functions_app, serve_in_thread
    from lib.http.workers import (
        WORKERS_IP_FRACTION,
        WorkerSpec,
        reserve_port,
        serve_workers,
        worker_ip_share,
    )
    from lib.paper_exchange.config import PaperExchangeConfig
    from lib.paper_exchange.server import running_paper_exchange

    configure_logging()
    # uvicorn re-raises SIGTERM after its own graceful shutdown; turning it into SystemExit lets the
    # cleanup below run (forget this stack's facts, stop the paper exchange) instead of dying mid-way.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    state_path = settings.state_dir / "paper-exchange" / f"{settings.database.db_name}.json"
    paper = PaperExchangeConfig(
        symbols=stack_symbols(),
        state_path=state_path,
        port=paper_listener.port,
        speed=speed,
        start_time_ms=replay_start_ms(),
    )
    notes = [n for n in (functions_listener.note, paper_listener.note) if n]
    workers = settings.http.workers
    host_share = DEFAULT_SHARE
    with running_paper_exchange(paper, sock=paper_listener.sock) as paper_url:
        # The scheduler (scans, fan-out, tracking) runs here, in the parent, once for the stack; the
        # workers pass /scheduler/* on to it. Its IP limiter and the workers' divide the host's share of
        # Bybit's per-IP budget between them (lib/http/workers.py).
        limiter = RateLimiter(host_share * (1 - WORKERS_IP_FRACTION))
        market, exchange = exchange_clients(settings, paper_url=paper_url, limiter=limiter)
        scheduling = functions_app(settings, exchange=exchange, market=market)
        attach_scheduler(scheduling, paper_url=paper_url, tick_driven=speed == 0)
        with serve_in_thread(scheduling.build()) as scheduler_url:
            spec = WorkerSpec(
                settings=settings,
                paper_url=paper_url,
                ip_share=worker_ip_share(host_share, workers, fraction=WORKERS_IP_FRACTION),
                forward_url=scheduler_url,
                forward_paths=(("/scheduler/tick", "POST"), ("/scheduler/status", "GET")),
            )
            urls = StackUrls(
                api_url=f"http://127.0.0.1:{functions_listener.port}", paper_exchange_url=paper_url
            )

            def ready() -> None:
                # Every worker listens now: the URLs announced (and recorded) below answer from here on.
                write_services(
                    settings.state_dir,
                    settings.database.db_name,
                    {
                        "pid": os.getpid(),
                        "api_url": urls.api_url,
                        "functions_url": urls.functions_url,
                        "paper_exchange_url": paper_url,
                        "code_hash": code_hash(),
                        "started_at": time.time(),
                        "notes": notes,
                        "workers": workers,
                    },
                )
                log_event(
                    logger,
                    "stack_up",
                    api_url=urls.api_url,
                    paper_exchange_url=paper_url,
                    notes=notes,
                    workers=workers,
                )
                for note in notes:
                    announce(f"note: {note}")
                announce(f"functions: {urls.functions_url} ({workers} worker{'s' if workers != 1 else ''})")
                announce(f"paper exchange: {paper_url}")
                announce("Ctrl-C stops both")

            # The port stays ours (bound, SO_REUSEPORT) while each worker listens on it with a socket
            # of its own (lib/http/workers.py says why).
            functions_listener.sock.close()
            reserved = reserve_port("127.0.0.1", functions_listener.port)
            try:
                # uvicorn's supervisor: it returns on SIGINT or SIGTERM, after stopping the workers.
                serve_workers(spec, "127.0.0.1", functions_listener.port, workers, ready=ready)
            finally:
                reserved.close()
                write_services(settings.state_dir, settings.database.db_name, None)
                log_event(logger, "stack_down")


def start_detached(settings: Settings, env: dict[str, str]) -> dict[str, Any]:
    """Start ``aitradex up`` in the background and wait until it answers; returns its facts."""
    log_dir = settings.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"stack-{settings.database.db_name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "lib.cli", "up", *_port_args(settings)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise AitradexError(
                "the stack exited during start-up", details={"log": str(log_path), "tail": tail}
            )
        facts = running_facts(settings)
        if facts and int(facts["pid"]) == process.pid:
            return facts
        time.sleep(0.2)
    process.terminate()
    raise AitradexError("the stack did not answer in time", details={"log": str(log_path)})


def stop(settings: Settings, timeout_s: float = 20.0) -> bool:
    """Stop a detached stack (SIGTERM, then SIGKILL after ``timeout_s``). Returns True if one ran."""
    return stop_recorded(settings.state_dir, settings.database.db_name, timeout_s)


def stop_recorded(state_dir: Path, db_name: str, timeout_s: float = 20.0) -> bool:
    """:func:`stop` from a state folder and a database name (no secrets needed)."""
    facts = read_services(state_dir, db_name)
    if not facts:
        return False
    pid = facts.get("pid")
    if not pid or not _pid_alive(int(pid)):
        write_services(state_dir, db_name, None)
        return False
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(int(pid)):
        os.kill(int(pid), signal.SIGKILL)
    write_services(state_dir, db_name, None)
    return True


def ensure_running(settings: Settings, env: dict[str, str]) -> tuple[bool, str, dict[str, Any]]:
    """Start the stack, or redeploy it if its code changed. Returns (changed, what happened, facts)."""
    facts = running_facts(settings)
    current = code_hash()
    if facts and facts.get("code_hash") == current:
        return False, f"running at {facts['api_url']} (pid {facts['pid']})", facts
    verb = "redeployed" if facts else "started"
    if facts:
        stop(settings)
    facts = start_detached(settings, env)
    notes = "".join(f"; {note}" for note in facts.get("notes") or [])
    return True, f"{verb} at {facts['api_url']} (pid {facts['pid']}){notes}", facts


def verify(settings: Settings, api_url: str) -> dict[str, Any]:
    """Ask ``diagnostics`` (as the service role) for the full health document."""
    key = mint_api_key("service_role", settings.jwt_secret.reveal())
    response = httpx.post(
        f"{api_url}/functions/v1/diagnostics",
        json={"action": "check"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30.0,
    )
    if response.status_code != 200:
        raise AitradexError(
            f"diagnostics answered HTTP {response.status_code}", details={"body": response.text[:500]}
        )
    document: dict[str, Any] = response.json()
    return document


def stack_log_path(settings: Settings) -> Path:
    """Where a detached stack writes its JSON log lines."""
    return settings.state_dir / "logs" / f"stack-{settings.database.db_name}.log"
