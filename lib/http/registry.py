"""The functions this server serves: the one place ``lib`` reaches into ``functions/``.

Everything else in ``lib`` calls services, never handlers, so the import-linter contract "lib never
imports functions" has exactly this exception.
"""

from __future__ import annotations

from lib.http.spec import FunctionSpec


def registry() -> dict[str, FunctionSpec]:
    """Every function's spec, keyed by its URL name (imported on first use: handlers import services)."""
    from functions import registry as function_registry

    return function_registry()
