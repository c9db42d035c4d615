"""The paths of the paper exchange's local ``/_paper`` controls, shared by its routes and its client."""

from __future__ import annotations

CLOCK = "/_paper/clock"
ADVANCE = "/_paper/clock/advance"
SET_CLOCK = "/_paper/clock/set"
FAULTS = "/_paper/faults"
ACCOUNTS = "/_paper/accounts"
STATS = "/_paper/stats"
