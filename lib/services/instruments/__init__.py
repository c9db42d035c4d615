"""The shared instruments cache: each category's order filters, fetched by one caller at a time.

- :mod:`.cache`: the entry point (:func:`~.cache.get_snapshot`, :func:`~.cache.get_filters`) and freshness;
- :mod:`.refresh`: the single refresher (advisory lock), stale serving, exchange failures;
- :mod:`.payload`: the stored entry's JSON and its parsing;
- :mod:`.memo`: each process's short-lived copy.

The SQL is in :mod:`lib.stores.instruments_cache`; symbol validation on top of the cache is
:mod:`lib.services.symbol_validation`.
"""
