"""Scanning: market data in, scored signals out, one ``scan_runs`` row per run.

- :mod:`.scanner`: the orchestration (``run_scans``, ``scan``, ``scan_many``, ``format_summary``);
- :mod:`.settings`: the scanner's ``app_settings`` (``ScanSettings``, ``load_scan_settings``);
- :mod:`.models`: the request, the result, per-symbol errors and progress callbacks;
- :mod:`.snapshot`: the market side (market time, universe, klines);
- :mod:`.universe`: the universe filter on tickers and instruments;
- :mod:`.candidates`: from the scorer's candidates to the signals stored.

The SQL is in :mod:`lib.stores.signals` and :mod:`lib.stores.scan_runs`.
"""
