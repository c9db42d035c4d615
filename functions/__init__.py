"""The functions: one folder each (``functions/<snake_name>/handler.py``), served under their kebab names."""

from __future__ import annotations

import importlib

from lib.http.spec import FunctionSpec

# kebab-case URL name -> Python package under functions/
FUNCTIONS: dict[str, str] = {
    "aitradex1-trade-executor": "aitradex1_trade_executor",
    "diagnostics": "diagnostics",
    "order-tracker": "order_tracker",
    "signals-api": "signals_api",
    "symbol-validator": "symbol_validator",
    "trading-account": "trading_account",
    "trading-activity": "trading_activity",
    "trading-preferences": "trading_preferences",
    "unireli-core-scanner": "unireli_core_scanner",
}


def registry() -> dict[str, FunctionSpec]:
    """Every function's spec, keyed by its URL name. Importing a handler must do no I/O."""
    specs: dict[str, FunctionSpec] = {}
    for name, package in FUNCTIONS.items():
        spec: FunctionSpec = importlib.import_module(f"functions.{package}.handler").SPEC
        if spec.name != name:
            raise RuntimeError(f"functions/{package} declares {spec.name!r}, registered as {name!r}")
        specs[name] = spec
    return specs
