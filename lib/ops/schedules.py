"""Registering the schedules: pg_cron + pg_net where the database has them, the built-in scheduler otherwise.

On a hosted Supabase project, ``cron.schedule`` jobs POST to the functions with ``net.http_post``: a
scan per timeframe at its candle close (a minute's grace after the boundary is not needed: Bybit's
closed candle is available at once), and the executor and order tracker every minute. The service-role
key is read from Supabase Vault (secret ``aitradex_service_role_key``) when the job runs, so it is never
stored in ``cron.job``. Jobs are upserted by name (``cron.schedule`` replaces a job of the same name), so
registering again changes nothing.

Elsewhere (the embedded database, a plain Postgres) the stack's built-in scheduler runs the same
pipeline (``lib.app.pipeline``), and nothing is registered in the database.

Base backups (embedded database only): :func:`backup_scheduler` is a scheduler of its own beside the
pipeline's, polling by wall time even when the paper replay is tick-driven, so a backup never delays a
replayed candle. Its one job looks every 10 minutes and takes a backup when the catalogue's newest is
older than ``AITRADEX_BACKUP_INTERVAL_HOURS`` (default 24), in a thread, so the functions keep serving.
It is ``once_per_tick``: with an ``election`` (several functions workers on one database), only the
tick's leader looks, so two workers never take the same backup side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from lib.app.scheduler import Every, Job, Scheduler, TickElection
from lib.config import Settings
from lib.db import cron
from lib.db.target import OwnerConnection
from lib.exchange.market_clock import WallClock

CRON_BY_TIMEFRAME = {
    "1": "* * * * *",
    "3": "*/3 * * * *",
    "5": "*/5 * * * *",
    "15": "*/15 * * * *",
    "30": "*/30 * * * *",
    "60": "0 * * * *",
    "120": "0 */2 * * *",
    "240": "0 */4 * * *",
    "360": "0 */6 * * *",
    "720": "0 */12 * * *",
    "D": "0 0 * * *",
    "W": "0 0 * * 1",
    "M": "0 0 1 * *",
}
VAULT_SECRET = "aitradex_service_role_key"  # noqa: S105 - the Vault entry's name, not a secret


@dataclass(frozen=True, slots=True)
class CronJob:
    """One pg_cron job: its name, cron expression, and the function call it makes."""

    name: str
    schedule: str
    function: str
    body: dict[str, object]

    def command(self, functions_url: str) -> str:
        """The SQL pg_cron runs: an authenticated POST through pg_net, the key read from Vault."""
        return cron.http_post_command(f"{functions_url.rstrip('/')}/{self.function}", VAULT_SECRET, self.body)


@dataclass(frozen=True, slots=True)
class SchedulePlan:
    """How schedules run on this database: pg_cron jobs, or the built-in scheduler."""

    uses_pg_cron: bool
    jobs: tuple[CronJob, ...]

    def describe(self) -> str:
        if not self.uses_pg_cron:
            return "built-in scheduler in the stack (no pg_cron/pg_net here)"
        return "pg_cron: " + ", ".join(f"{job.name} [{job.schedule}]" for job in self.jobs)


def cron_jobs(timeframes: Sequence[str], algorithms: Sequence[str]) -> tuple[CronJob, ...]:
    """The jobs for these timeframes and algorithms, plus the executor and tracker every minute."""
    jobs = [
        CronJob(
            f"aitradex-scan-{tf}-{algorithm}",
            CRON_BY_TIMEFRAME[tf],
            "unireli-core-scanner",
            {"action": "scan", "timeframe": tf, "algorithm": algorithm},
        )
        for tf in timeframes
        for algorithm in algorithms
    ]
    jobs.append(
        CronJob("aitradex-executor", "* * * * *", "aitradex1-trade-executor", {"action": "execute_pending"})
    )
    jobs.append(CronJob("aitradex-order-tracker", "* * * * *", "order-tracker", {"action": "track"}))
    return tuple(jobs)


def plan(conn: OwnerConnection, timeframes: Sequence[str], algorithms: Sequence[str]) -> SchedulePlan:
    """What :func:`register` would do on this database."""
    if not cron.available(conn):
        return SchedulePlan(uses_pg_cron=False, jobs=())
    return SchedulePlan(uses_pg_cron=True, jobs=cron_jobs(timeframes, algorithms))


def register(conn: OwnerConnection, schedule: SchedulePlan, functions_url: str) -> int:
    """Create or update the pg_cron jobs of ``schedule``; returns how many changed (0 when already so)."""
    changed = 0
    for job in schedule.jobs:
        command = job.command(functions_url)
        if cron.current(conn, job.name) == (job.schedule, command):
            continue
        cron.schedule(conn, job.name, job.schedule, command)
        changed += 1
    return changed


BACKUP_CHECK_S = 600.0


def backup_job(settings: Settings) -> Job:
    """The daily (or ``interval_hours``) base backup: checked every 10 minutes, taken when due."""
    from lib.ops.backup import backup_if_due

    async def run() -> None:
        await asyncio.to_thread(backup_if_due, settings)

    period = min(BACKUP_CHECK_S, settings.backups.interval_hours * 3600)
    return Job("backup", Every(period), run, once_per_tick=True)


def backup_scheduler(settings: Settings, *, election: TickElection | None = None) -> Scheduler | None:
    """The backup job's own scheduler, or None (an external database, or the interval set to 0).

    ``election`` (a :class:`~lib.app.scheduler.DatabaseElection`) makes one scheduler per tick take it
    when several run on the database; without one, this scheduler always does.
    """
    if not settings.database.embedded or settings.backups.interval_hours <= 0:
        return None
    return Scheduler([backup_job(settings)], market_clock=WallClock(), election=election)
