"""``aitradex data``: candles downloaded from Bybit V5 (or the paper exchange) into the bundled CSV format.

- :mod:`lib.ops.data.candle_range`: which candles a request covers, and where the series has a hole (pure);
- :mod:`lib.ops.data.candle_files`: the ``<SYMBOL>-<5m|1h|...>.csv.gz`` files, read and appended atomically;
- :mod:`lib.ops.data.download`: the paging through ``/v5/market/kline`` and one outcome per symbol.
"""
