#!/usr/bin/env python3
"""Rebuild the whole AITRADEX1 pipeline from nothing; safe to run again.

Usage: scripts/rebuild_system.py [--dry-run] [--reset-settings]

Exits 0 when every step succeeded, 1 on any failure (with the reason), 2 on bad arguments.
"""

from __future__ import annotations

import sys

from lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["rebuild", *sys.argv[1:]]))
