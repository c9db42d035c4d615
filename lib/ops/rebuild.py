"""Rebuild the whole pipeline from nothing, idempotently (DESIGN.md section 8).

Steps, in order; each reports whether it changed anything, so a second run reports no change:

1. local secrets (generated on the first local run only, never overwritten);
2. the database: start the embedded server or reach ``DATABASE_URL``; create the database;
3. the Supabase compatibility layer, where the database lacks Supabase's own objects;
4. ``authenticator``'s password (only for databases this project manages);
5. migrations (tracked, checksummed; an edited applied migration stops the rebuild);
6. ``app_settings`` from the versioned ``supabase/seed/app_settings.json``: keys the table lacks are
   added and descriptions follow the file, but a live value that differs from the file is kept and
   reported (drift: changed with ``aitradex settings set``, or by hand), unless ``reset_settings``
   (``--reset-settings``) puts the file's values back. Live keys the file lacks are reported, never
   deleted;
7. ``markets`` seeded from ``supabase/seed/markets.json``;
8. the schedules: pg_cron + pg_net jobs where the database has them (hosted Supabase; the functions'
   public URL comes from ``AITRADEX_FUNCTIONS_URL``), otherwise the stack's built-in scheduler;
9. the functions server and paper exchange: started, or redeployed when the code changed;
10. verification through ``diagnostics``: every check healthy, or only lacking history (no scan yet,
   instruments cache never filled), which is what a system rebuilt from nothing looks like.

``dry_run`` reports the same plan and changes nothing: no secret, server, database or row.

``restore="latest"`` (``rebuild --restore latest``) is the disaster rebuild on a new machine: the
secrets imported (``aitradex secrets import``), no data folder, the backup folder present. Before step
2 it restores the newest base backup and replays every archived commit (:mod:`lib.ops.restore`, which
also sets ``trading_halted``); the steps then run on the restored database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.config import DEFAULT_STATE_DIR, REPO_ROOT, SECRETS_FILE, Settings, load_settings
from lib.db import migrate
from lib.db.target import DatabaseTarget, OwnerConnection, admin_connection, database_target, start_database
from lib.errors import AitradexError, ConfigError
from lib.local_state import ensure_local_secrets
from lib.ops import schedules, stack_runner
from lib.ops.settings_diff import compare
from lib.services.scanning.settings import SETTING_KEYS, ScanSettings
from lib.stores import markets as markets_store
from lib.stores import settings as settings_store

SEED_DIR = REPO_ROOT / "supabase" / "seed"
APP_SETTINGS_FILE = SEED_DIR / "app_settings.json"
MARKETS_FILE = SEED_DIR / "markets.json"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step's outcome: ``changed`` is False when the step found everything already in place."""

    name: str
    changed: bool
    detail: str


@dataclass
class RebuildReport:
    """Every step's outcome, in order."""

    dry_run: bool
    steps: list[StepResult] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps)

    def add(self, name: str, changed: bool, detail: str) -> None:
        self.steps.append(StepResult(name, changed, detail))


def load_seed(path: Path) -> list[dict[str, Any]]:
    """Read a seed file: a JSON list of objects."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise AitradexError(f"{path} must be a JSON list of objects")
    return data


def _secrets_step(report: RebuildReport, state_dir: Path, env: Mapping[str, str]) -> None:
    if report.dry_run:
        path = state_dir / SECRETS_FILE
        detail = f"would generate local secrets in {path}" if not path.exists() else f"keep {path}"
        report.add("secrets", not path.exists(), detail)
        return
    created = ensure_local_secrets(state_dir)
    overridden = [n for n in created if env.get(n)]
    detail = (
        f"generated {', '.join(created)} in {state_dir / SECRETS_FILE}" if created else "local secrets kept"
    )
    if overridden:
        detail += f" (the environment overrides {', '.join(overridden)})"
    report.add("secrets", bool(created), detail)


def _dry_run_database(
    report: RebuildReport, target: DatabaseTarget, settings: Settings, *, reset_settings: bool
) -> None:
    server = target.embedded
    if server is not None and not server.is_running():
        report.add("database", True, f"would start embedded PostgreSQL on 127.0.0.1:{server.port}")
        report.add("migrations", True, f"would apply all {len(migrate.discover())} migrations")
        report.add("seeds", True, f"would restore {APP_SETTINGS_FILE.name} and {MARKETS_FILE.name}")
        return
    # Connecting first: an unreachable DATABASE_URL fails the plan (DatabaseUnavailable, one line).
    conn = admin_connection(target)
    report.add("database", False, "database reachable")
    # Everything below runs in one transaction that is always rolled back: exact answers, no change.
    with conn, conn.transaction(force_rollback=True):
        pending = (
            migrate.check(conn, migrate.discover()).pending
            if migrate.is_tracked(conn)
            else tuple(migrate.discover())
        )
        names = ", ".join(m.path.name for m in pending)
        report.add("migrations", bool(pending), f"would apply {names}" if pending else "up to date")
        if pending:
            report.add("seeds", True, "would restore app_settings and markets after the migrations")
            return
        _settings_step(report, conn, reset=reset_settings)
        n = markets_store.seed(conn, load_seed(MARKETS_FILE))
        report.add("markets", n > 0, f"would seed {n} market(s)" if n else "match the seed")
        report.add(
            "schedules", False, "would use " + schedules.plan(conn, *_schedule_settings(conn)).describe()
        )
    facts = stack_runner.running_facts(settings)
    if facts is None:
        report.add("functions", True, "would start the functions server and paper exchange")
    elif facts.get("code_hash") != stack_runner.code_hash():
        report.add("functions", True, f"would redeploy the server at {facts['api_url']} (code changed)")
    else:
        report.add("functions", False, f"running at {facts['api_url']}")


def _settings_step(report: RebuildReport, conn: OwnerConnection, *, reset: bool) -> None:
    """Add what the table lacks; keep and report drifted live values, or with ``reset`` restore them."""
    seed = load_seed(APP_SETTINGS_FILE)
    drift = compare(settings_store.all_settings_sync(conn), seed)
    would = "would " if report.dry_run else ""
    done: list[str] = []
    n = settings_store.seed_missing_sync(conn, seed)
    if n:
        done.append(f"{would}restore {n} setting(s)" if would else f"{n} setting(s) restored")
    if reset and drift.changed:
        settings_store.restore_seed(conn, [row for row in seed if row["key"] in drift.changed])
        done.append(f"{would}reset {', '.join(drift.changed)} to {APP_SETTINGS_FILE.name}")
    elif drift.changed:
        kept = "would keep" if would else "kept"
        done.append(
            f"{kept} the live value of {', '.join(drift.changed)}, which differs "
            f"from {APP_SETTINGS_FILE.name} (`aitradex settings diff` shows how; "
            "`aitradex rebuild --reset-settings` restores the file's)"
        )
    if drift.added:
        done.append(f"live only, kept: {', '.join(drift.added)}")
    changed = bool(n) or (reset and bool(drift.changed))
    report.add("app_settings", changed, "; ".join(done) or "match the backup")


def _schedule_settings(conn: OwnerConnection) -> tuple[list[str], list[str]]:
    scan = ScanSettings.from_values(settings_store.read_values_sync(conn, SETTING_KEYS))
    return list(scan.timeframes), list(scan.algorithms)


def _schedules_step(report: RebuildReport, conn: OwnerConnection, env: Mapping[str, str]) -> None:
    plan = schedules.plan(conn, *_schedule_settings(conn))
    if not plan.uses_pg_cron:
        report.add("schedules", False, plan.describe())
        return
    functions_url = env.get("AITRADEX_FUNCTIONS_URL")
    if not functions_url:
        raise ConfigError("pg_cron is available: set AITRADEX_FUNCTIONS_URL to the functions' public URL")
    changed = schedules.register(conn, plan, functions_url)
    report.add(
        "schedules", changed > 0, f"{changed} pg_cron job(s) registered" if changed else plan.describe()
    )


def _verify_step(report: RebuildReport, settings: Settings, api_url: str) -> None:
    document = stack_runner.verify(settings, api_url)
    checks = document.get("checks") or []
    bad = {c["name"]: c["message"] for c in checks if c["status"] != "healthy" and not c["cold"]}
    cold = [c["name"] for c in checks if c["status"] != "healthy" and c["cold"]]
    if bad or not checks:
        raise AitradexError(
            f"diagnostics says {document.get('status')}", details=bad or {"checks": "missing"}
        )
    detail = (
        "diagnostics: healthy"
        if not cold
        else f"diagnostics: healthy apart from no history yet ({', '.join(cold)})"
    )
    report.add("verify", False, detail)


def _restore_step(report: RebuildReport, state_dir: Path, env: Mapping[str, str]) -> None:
    """``--restore latest``: refuse without the secrets or over an existing data folder, then restore."""
    from lib.ops.restore import restore

    if not (state_dir / SECRETS_FILE).exists() and not env.get("POSTGRES_SUPERUSER_PASSWORD"):
        raise ConfigError(
            f"no local secrets in {state_dir / SECRETS_FILE}: the restored database's passwords and keys are "
            "in the secrets backup; `aitradex secrets import --in FILE` first"
        )
    settings = load_settings(env)
    if (state_dir / "pgdata").exists():
        raise ConfigError(
            f"{state_dir / 'pgdata'} exists: --restore rebuilds a machine that has no database; "
            "`aitradex restore --latest --yes` replaces one (moving it aside)"
        )
    done = restore(settings, target=None, env=env, start_stack=False)
    report.add(
        "restore",
        True,
        f"restored {done.plan.backup.label} and the WAL to {done.plan.last_segment} in {done.seconds:.1f} s; "
        "trading_halted set",
    )


def rebuild(
    *,
    dry_run: bool = False,
    reset_settings: bool = False,
    serve: bool = True,
    env: Mapping[str, str] | None = None,
    progress: Callable[[StepResult], None] | None = None,
    restore: str | None = None,
) -> RebuildReport:
    """Run (or, with ``dry_run``, plan) every step. Raises AitradexError on the first failure.

    ``reset_settings`` puts the file's values back over live settings that differ from it (step 6).
    """
    env = dict(os.environ if env is None else env)
    report = RebuildReport(dry_run=dry_run)

    def emit() -> None:
        if progress is not None:
            progress(report.steps[-1])

    state_dir = Path(env.get("AITRADEX_STATE_DIR") or DEFAULT_STATE_DIR).resolve()
    if restore is not None and not dry_run:
        _restore_step(report, state_dir, env)
        emit()
    _secrets_step(report, state_dir, env)
    emit()
    if dry_run and report.steps[-1].changed:
        report.add("database", True, "would start embedded PostgreSQL and apply every migration and seed")
        emit()
        return report

    settings = load_settings(env)
    if dry_run:
        _dry_run_database(report, database_target(settings), settings, reset_settings=reset_settings)
        for step in report.steps[1:]:
            if progress is not None:
                progress(step)
        return report

    target, done = start_database(settings)
    report.add("database", bool(done), "; ".join(done) or "database already running")
    emit()

    with admin_connection(target) as conn:
        compat_changed = not migrate.compat_layer_present(conn)
        migrate.apply_compat_layer(conn)
        report.add(
            "compat",
            compat_changed,
            "created Supabase roles and auth schema" if compat_changed else "present",
        )
        emit()

        if settings.database.embedded or not env.get("AITRADEX_APP_DB_URL"):
            changed = migrate.ensure_authenticator_password(
                conn, target.app_url, settings.database.authenticator_password.reveal()
            )
            report.add("authenticator", changed, "password set" if changed else "logs in")
            emit()

        applied = migrate.migrate(conn)
        report.add("migrations", bool(applied), f"applied {', '.join(applied)}" if applied else "up to date")
        emit()

        _settings_step(report, conn, reset=reset_settings)
        emit()

        n = markets_store.seed(conn, load_seed(MARKETS_FILE))
        report.add("markets", n > 0, f"{n} market(s) seeded" if n else "match the seed")
        emit()

        _schedules_step(report, conn, env)
        emit()

    if serve:
        changed, detail, facts = stack_runner.ensure_running(settings, env)
        report.add("functions", changed, detail)
        emit()
        if restore is not None:
            _reconcile_step(report, settings, facts)
            emit()
        _verify_step(report, settings, str(facts["api_url"]))
        emit()
    elif restore is not None:
        report.add(
            "reconcile", False, "no stack started (--no-serve): run `aitradex reconcile` after `aitradex up`"
        )
        emit()
    return report


def _reconcile_step(report: RebuildReport, settings: Settings, facts: Mapping[str, Any]) -> None:
    """After ``--restore``: the reconciliation, once the stack (and its paper exchange) runs, halted."""
    from lib.ops.reconcile import run_reconcile

    paper_url = facts.get("paper_exchange_url")
    done = run_reconcile(settings, since=None, paper_url=str(paper_url) if paper_url else None)
    errors = f"; {len(done.errors)} error(s): trading stays halted" if done.errors else ""
    report.add(
        "reconcile",
        bool(done.imported or done.closes_recovered or done.halt_cleared),
        f"imported {len(done.imported)} order(s), {len(done.foreign)} foreign left alone{errors}; "
        f"{done.halt_note}",
    )
