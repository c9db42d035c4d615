"""A database server of the backup tests' own: its own state folder, secrets, backup folder and port.

Restores replace a whole cluster, so these tests never touch the session's server or its databases.
The drill database is rebuilt as the rebuild does it (migrations, seeds), without the functions stack.

The folders live in a temporary folder of their own, not under pytest's ``pytest-of-<user>``: under root
the server runs as ``pgserver``, and every pytest session that starts on the machine resets that folder
to mode 0700, which would lock the server out of its own archive in the middle of a test.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from lib.config import Settings, load_settings
from lib.db import archive
from lib.db.target import embedded_server
from lib.local_state import all_services
from lib.ops import stack_runner
from lib.ops.rebuild import rebuild
from tests.integration.cli_helpers import clean_env

DRILL_DB = "drill"


@dataclass
class Drill:
    """The drill's environment and settings, and owner connections to its database."""

    env: dict[str, str]
    state_dir: Path

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    @property
    def backup_dir(self) -> Path:
        return Path(self.env["AITRADEX_BACKUP_DIR"])

    def connect(self, db_name: str = DRILL_DB) -> psycopg.Connection[Any]:
        settings = self.settings
        password = settings.database.embedded_superuser_password
        assert password is not None
        url = embedded_server(settings).admin_url(password.reveal(), db_name)
        return psycopg.connect(url, autocommit=True, connect_timeout=5)

    def rows(self, table: str = "drill_rows") -> list[str]:
        with self.connect() as conn:
            return [r[0] for r in conn.execute(f"select note from {table} order by id").fetchall()]

    def insert(self, note: str) -> Any:
        """Insert one row (committed); returns the server's clock just after the commit."""
        with self.connect() as conn:
            conn.execute("create table if not exists drill_rows (id serial primary key, note text not null)")
            conn.execute("insert into drill_rows (note) values (%s)", (note,))
            row = conn.execute("select clock_timestamp()").fetchone()
        assert row is not None
        return row[0]

    def halt_history(self) -> list[tuple[bool, str]]:
        """Every value ``trading_halted`` was given, oldest first, from the audit log: (halted, by)."""
        with self.connect() as conn:
            rows = conn.execute(
                "select new_values -> 'value' from audit_log where table_name = 'app_settings' "
                "and new_values ->> 'key' = 'trading_halted' order by id"
            ).fetchall()
        return [(v.get("halted") is True, str(v.get("by"))) for (v,) in rows if isinstance(v, dict)]

    def switch_and_wait_archived(self, timeout_s: float = 30.0) -> None:
        """``pg_switch_wal()``, then wait (bounded) until that segment is in the archive."""
        with self.connect() as conn:
            lsn = archive.switch_wal(conn)
            deadline = time.monotonic() + timeout_s
            while not archive.archived_through(conn, lsn):
                assert time.monotonic() < deadline, "the segment was not archived in time"
                time.sleep(0.05)

    def trading_halted(self) -> bool:
        """Whether ``trading_halted`` says halted, set by the restore with its reason."""
        with self.connect() as conn:
            row = conn.execute("select value from app_settings where key = 'trading_halted'").fetchone()
        if row is None or not isinstance(row[0], dict):
            return False
        value = row[0]
        assert value["by"] == "aitradex restore"
        assert "reconcile before trading resumes" in value["reason"]
        return value["halted"] is True


def drill_server() -> Iterator[Drill]:
    """Build a drill server in a new temporary folder; stop everything it ran and remove the folder."""
    root = Path(tempfile.mkdtemp(prefix="aitradex-drill-"))
    state = root / "state"
    env = clean_env(
        state,
        AITRADEX_DB_NAME=DRILL_DB,
        AITRADEX_BACKUP_DIR=str(root / "backups"),
        AITRADEX_BACKUP_INTERVAL_HOURS="0",
    )
    rebuild(env=env, serve=False)
    drill = Drill(env, state)
    try:
        yield drill
    finally:
        for name in all_services(state):
            stack_runner.stop_recorded(state, name)
        embedded_server(load_settings(env)).stop()
        shutil.rmtree(root, ignore_errors=True)
