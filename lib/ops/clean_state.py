"""``aitradex clean-state`` (``make clean-state``): stop everything the state folder runs, then delete it.

The order matters: the folder's ``stack.json`` is how the background stacks are found, and its
``pgdata`` is how the embedded PostgreSQL is found, so both are stopped first, from what the folder
records, and only then is the folder deleted. The folder is ``AITRADEX_STATE_DIR`` (default
``.aitradex/``). Secrets go with it: a rebuild generates new ones.

It refuses to delete a folder that holds nothing a stack wrote (no ``secrets.json``, ``stack.json``,
``pgdata``, ``logs`` or ``paper-exchange``), or the repository, the home folder or the root, so a
mistyped ``AITRADEX_STATE_DIR`` cannot wipe anything else.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from lib.config import REPO_ROOT
from lib.db.embedded import DEFAULT_PORT, EmbeddedPostgres
from lib.errors import ConfigError
from lib.local_state import STATE_ENTRIES, all_services, is_state_folder, read_stack
from lib.ops import stack_runner


def _refuse(state_dir: Path) -> str | None:
    if state_dir in {Path("/"), Path.home().resolve(), REPO_ROOT} or (state_dir / ".git").exists():
        return "it is the root, the home folder or a repository"
    if not is_state_folder(state_dir):
        return f"it holds none of {', '.join(STATE_ENTRIES)}, so it is not a state folder"
    return None


def clean_state(state_dir: Path, say: Callable[[str], None]) -> None:
    """Stop the stacks and the embedded database recorded in ``state_dir``, then delete it."""
    state_dir = state_dir.resolve()
    if not state_dir.exists():
        say(f"{state_dir} does not exist: nothing to clean")
        return
    reason = _refuse(state_dir)
    if reason is not None:
        raise ConfigError(f"refusing to delete {state_dir}: {reason}")
    for db_name, facts in sorted(all_services(state_dir).items()):
        if stack_runner.stop_recorded(state_dir, db_name):
            say(f"stopped the stack of database {db_name} (pid {facts.get('pid')})")
    port = read_stack(state_dir).get("pg_port")
    server = EmbeddedPostgres(data_dir=state_dir / "pgdata", port=int(port) if port else DEFAULT_PORT)
    if server.stop():
        say(f"stopped the embedded PostgreSQL in {server.data_dir}")
    shutil.rmtree(state_dir)
    say(f"deleted {state_dir}")
