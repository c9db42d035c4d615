"""Host processes for the multi-host tests: each a real OS process with its own source address.

:class:`Hosts` starts ``aitradex executor --loop`` processes (``python -m lib.cli executor``), one per
loopback address (127.0.0.2, 127.0.0.3, ...: any 127/8 address works on Linux without setup), each
bound to that address for every exchange call and polling the shared Postgres. :meth:`Hosts.start`
takes the subcommand and its arguments, so another kind of host (a scanner host, say) is started the
same way: ``hosts.start("127.0.0.5", ["scan", "--loop", ...])``. :meth:`Hosts.stop` sends SIGTERM and
reads each host's JSON summary; :meth:`Hosts.kill` is the crash (SIGKILL). Every wait is bounded, and
:meth:`Hosts.close` kills whatever is still running.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 60.0


def executor_args(
    paper_url: str, *, lease_s: float, interval_s: float = 0.1, extra: list[str] | None = None
) -> list[str]:
    """``aitradex executor --loop`` against the test's paper exchange."""
    return [
        "executor",
        "--loop",
        "--paper-url",
        paper_url,
        "--interval-s",
        str(interval_s),
        "--lease-s",
        str(lease_s),
        *(extra or []),
    ]


@dataclass
class Host:
    """One host process: its address, the process, and (once stopped) its summary and stderr."""

    address: str
    process: asyncio.subprocess.Process
    log: Path
    summary: dict[str, Any] | None = None

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def worker_prefix(self) -> str:
        """How its executor names itself in claims (``lib.ops.executor_host.worker_name``)."""
        return f":{self.address}:{self.process.pid}"


@dataclass
class Hosts:
    """Host processes started from ``env`` (the test environment, on the test database); their logs
    (stderr) go to files in ``log_dir``, so no pipe fills while nobody reads it."""

    env: dict[str, str]
    log_dir: Path
    running: list[Host] = field(default_factory=list)

    async def start(self, address: str, args: list[str], *, env: dict[str, str] | None = None) -> Host:
        """Start ``python -m lib.cli <args> --source-address <address>``."""
        log = self.log_dir / f"host-{address}-{len(self.running)}-{id(args)}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lib.cli",
                *args,
                "--source-address",
                address,
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        host = Host(address, process, log)
        self.running.append(host)
        # Bounded: the host says so once its services are open and it polls the queue.
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=STOP_TIMEOUT_S)
        assert line, f"host {address} exited before it was ready: {host.stderr[-2000:]}"
        assert "ready" in json.loads(line), line
        return host

    async def stop(self, host: Host) -> dict[str, Any]:
        """SIGTERM: the host finishes its run in progress and prints its summary; returns it."""
        host.process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(host.process.communicate(), timeout=STOP_TIMEOUT_S)
        assert host.process.returncode == 0, (
            f"host {host.address} exited {host.process.returncode}: {host.stderr[-2000:]}"
        )
        host.summary = json.loads(out.decode().strip().splitlines()[-1])
        self.running.remove(host)
        return host.summary

    async def kill(self, host: Host) -> None:
        """SIGKILL, as a crash: nothing of the host's runs in progress is finished or written."""
        host.process.kill()
        await asyncio.wait_for(host.process.wait(), timeout=STOP_TIMEOUT_S)
        self.running.remove(host)

    async def close(self) -> None:
        for host in list(self.running):
            if host.process.returncode is None:
                host.process.kill()
            await asyncio.wait_for(host.process.wait(), timeout=STOP_TIMEOUT_S)
        self.running.clear()
