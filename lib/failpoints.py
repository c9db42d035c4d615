"""Failpoints: named places where a test can make this process crash on purpose.

``AITRADEX_FAILPOINTS="executor.after_exchange_ack=kill"`` makes :func:`failpoint` at that name kill
the process with SIGKILL, exactly where a real crash would hurt most: after the exchange accepted an
order and before the database knows. Nothing is armed unless the variable is set, so production code
pays one dictionary lookup. This is the failpoint pattern of FoundationDB and TiKV, kept to one action.
"""

from __future__ import annotations

import os
import signal

_ARMED: dict[str, str] = {}
for _entry in filter(None, os.environ.get("AITRADEX_FAILPOINTS", "").split(",")):
    _name, _, _action = _entry.partition("=")
    _ARMED[_name.strip()] = _action.strip() or "kill"


def failpoint(name: str) -> None:
    """Crash here if a test armed ``name``."""
    if _ARMED.get(name) == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
