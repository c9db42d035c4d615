"""Helpers of the ``aitradex`` command line: argument types, checks made before any work, and output.

An argument type's refusal is argparse's usage error (exit 2, one line naming the argument); a check
that needs the file system raises ConfigError (exit 1, one line).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from lib.errors import ConfigError, InvalidRequest
from lib.local_state import is_state_folder, state_dir_from
from lib.ops.rebuild import StepResult
from lib.paper_exchange.numbers import parse_balance
from lib.services.auth.users import MAX_TOKEN_TTL_S


def ttl_hours(text: str) -> float:
    """``--ttl-hours``: a token lifetime above 0 and at most a week."""
    hours = float(text)
    if not math.isfinite(hours) or not 0 < round(hours * 3600) <= MAX_TOKEN_TTL_S:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_TOKEN_TTL_S // 3600} hours")
    return hours


def bounded_float(low: float, high: float, *, low_inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number in ``low..high`` (``low`` itself only if ``low_inclusive``)."""

    def parse(text: str) -> float:
        value = float(text)
        above = value >= low if low_inclusive else value > low
        if not math.isfinite(value) or not above or value > high:
            raise argparse.ArgumentTypeError(
                f"must be {'at least' if low_inclusive else 'above'} {low:g} and at most {high:g}"
            )
        return value

    return parse


def ip_address(text: str) -> str:
    """``--source-address``: an IPv4 or IPv6 address, normalized."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def balance(text: str) -> Decimal:
    """``--balance``: a paper account balance, bounded as the paper exchange bounds it."""
    try:
        return parse_balance(text)
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def port(text: str) -> int:
    """``--functions-port`` / ``--paper-port``: 0 (any free port) to 65535."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 (any free port) and 65535")
    return port


def check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before any work is done (ConfigError)."""
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    if not existed:
        path.unlink()


def existing_state_dir() -> Path:
    """The state folder, for the commands that stop things: it must hold a local stack (ConfigError)."""
    state_dir = state_dir_from(os.environ)
    if not is_state_folder(state_dir):
        raise ConfigError(f"no local stack in {state_dir}: nothing to stop (is AITRADEX_STATE_DIR right?)")
    return state_dir


def print_step(step: StepResult) -> None:
    """One rebuild step as a line: ``[changed]`` or ``[ok]``, its name, what it did."""
    mark = "changed" if step.changed else "ok"
    print(f"  [{mark:>7}] {step.name:<14} {step.detail}", flush=True)


def print_values(values: Mapping[str, str], output: str) -> None:
    """KEY=value lines (``env``), a JSON object (``json``) or aligned ``KEY: value`` lines (``pretty``)."""
    if output == "env":
        for key, value in values.items():
            print(f"{key}={value}")
    elif output == "json":
        print(json.dumps(dict(values), indent=2))
    else:
        width = max(map(len, values))
        for key, value in values.items():
            print(f"{key:>{width}}: {value}")


def bar_progress(bar: Any) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that moves a tqdm bar."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return progress
