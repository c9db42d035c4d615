"""Running the reconciliation against a configured deployment: ``aitradex reconcile`` and the restore.

It builds what :func:`lib.services.reconciliation.reconcile` needs from the settings: the database (as
the application connects), the vault of master keys, and a pybit exchange client whose ``paper``
environment points at the running stack's paper exchange (a paper account cannot be asked while no
stack runs: that account's error keeps the restore's halt, and the run can be repeated).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from lib.config import Settings
from lib.crypto import KeyVault
from lib.db.target import check_reachable, database_target
from lib.exchange.trading import PybitExchange
from lib.ops import stack_runner
from lib.services.reconciliation import ReconcileDeps, ReconcileReport, reconcile


def paper_url_of(settings: Settings) -> str | None:
    """The running stack's paper exchange URL, or None when no stack runs for this database."""
    facts = stack_runner.running_facts(settings)
    return str(facts["paper_exchange_url"]) if facts and facts.get("paper_exchange_url") else None


def run_reconcile(
    settings: Settings, *, since: datetime | None, dry_run: bool = False, paper_url: str | None = None
) -> ReconcileReport:
    """One reconciliation run of the configured database (see :mod:`lib.services.reconciliation`)."""
    target = database_target(settings)
    check_reachable(target)
    exchange = PybitExchange(paper_url=paper_url or paper_url_of(settings))

    async def run() -> ReconcileReport:
        async with target.database() as db:
            deps = ReconcileDeps(db=db, exchange=exchange, vault=KeyVault(settings.master_keys))
            return await reconcile(deps, since=since, dry_run=dry_run)

    return asyncio.run(run())


def describe(report: ReconcileReport) -> list[str]:
    """What a run did, one line each, for a terminal."""
    done = "would import" if report.dry_run else "imported"
    lines = [
        f"since {report.since.isoformat() if report.since else 'the exchange default window'}: "
        f"{report.accounts} account(s), {report.exchange_orders} order(s) on the exchange",
        f"{done} {len(report.imported)} order(s) the database lacked"
        + (f", {len(report.closes_recovered)} lost close(s) by hand" if report.closes_recovered else ""),
    ]
    lines += [
        f"  {o['order_link_id']} {o['side']} {o['qty']} {o['symbol']} {o['status']}" for o in report.imported
    ]
    if not report.dry_run:
        closed = report.tracker.closed if report.tracker else 0
        lines.append(
            f"marked {report.signals_executed} signal(s) executed; {closed} position close(s) recorded"
        )
    for o in report.foreign:
        lines.append(
            f"foreign order left alone: {o['order_link_id'] or '(no orderLinkId)'} {o['symbol']} "
            f"{o['status']}"
        )
    for o in report.unmatched:
        lines.append(f"ours but unmatched, left alone: {o['order_link_id']} ({o['why']})")
    for e in report.errors:
        lines.append(f"error on account {e.get('account_id')}: {e.get('message') or e.get('error')}")
    lines.append(report.halt_note)
    return lines
