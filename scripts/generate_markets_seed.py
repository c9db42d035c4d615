#!/usr/bin/env python3
"""Regenerate supabase/seed/markets.json from the paper exchange's own instrument filters.

The seed must agree with what the exchange enforces, so it is read from the paper exchange's
``/v5/market/instruments-info`` (linear) rather than derived a second time. Run it after changing the
bundled data or the paper exchange's filter rules; the rebuild then seeds the new file.
"""

from __future__ import annotations

import json

import httpx

from lib.ops.rebuild import MARKETS_FILE
from lib.paper_exchange.config import PaperExchangeConfig
from lib.paper_exchange.server import running_paper_exchange


def main() -> None:
    with running_paper_exchange(PaperExchangeConfig(state_path=None, port=0)) as url:
        params = {"category": "linear", "limit": 1000}
        body = httpx.get(f"{url}/v5/market/instruments-info", params=params).json()
    rows = [
        {
            "symbol": item["symbol"],
            "category": "linear",
            "base": item["baseCoin"],
            "quote": item["settleCoin"],
            "status": item["status"],
            "tick_size": item["priceFilter"]["tickSize"],
            "qty_step": item["lotSizeFilter"]["qtyStep"],
            "min_qty": item["lotSizeFilter"]["minOrderQty"],
            "max_qty": item["lotSizeFilter"]["maxOrderQty"],
            "min_notional": item["lotSizeFilter"]["minNotionalValue"],
            "enabled": True,
        }
        for item in sorted(body["result"]["list"], key=lambda i: i["symbol"])
    ]
    MARKETS_FILE.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {len(rows)} markets to {MARKETS_FILE}")


if __name__ == "__main__":
    main()
