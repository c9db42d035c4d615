"""Scanning: market data in, scored signals out, one ``scan_runs`` row per run.

- :mod:`.scanner`: the orchestration (``run_scans``, ``scan``, ``scan_many``, ``format_summary``);
- :mod:`.settings`: the scanner's ``app_settings`` (``ScanSettings``, ``load_scan_settings``);
- :mod:`.models`: the request, the result, per-symbol errors and progress callbacks;
- :mod:`.snapshot`: the market side (market time, universe, klines);
- :mod:`.universe`: the universe filter on tickers and instruments;
- :mod:`.candidates`: from the scorer's candidates to the signals stored;
- :mod:`.sharding`: symbols into buckets, buckets onto hosts (rendezvous hashing; pure);
- :mod:`.sharded`: scans shared across scanner hosts by leases and claims, each bar exactly once.

The SQL is in :mod:`lib.stores.signals`, :mod:`lib.stores.scan_runs` and :mod:`lib.stores.scan_shards`.
"""
