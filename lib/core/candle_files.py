"""The candle file format the bundled data, the downloader and the paper exchange share.

``<SYMBOL>-<tag>.csv`` or ``.csv.gz`` with the header below, oldest first; the tag is freqtrade's
spelling of the interval (``5m``, ``1h``), as the bundled files use.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

CANDLE_COLUMNS: tuple[str, ...] = ("open_time_ms", "open", "high", "low", "close", "volume")
#: The header line of every candle file.
CANDLE_HEADER = ",".join(CANDLE_COLUMNS)

#: Bybit's interval spelling to the file-name tag.
FILE_TAGS: Mapping[str, str] = MappingProxyType(
    {
        "1": "1m",
        "3": "3m",
        "5": "5m",
        "15": "15m",
        "30": "30m",
        "60": "1h",
        "120": "2h",
        "240": "4h",
        "360": "6h",
        "720": "12h",
        "D": "1d",
        "W": "1w",
        "M": "1M",
    }
)
