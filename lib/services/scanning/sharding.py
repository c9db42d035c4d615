"""Which host scans which symbols: symbols hashed into buckets, buckets spread by rendezvous hashing. Pure.

- A symbol's bucket is a stable hash of its name modulo the bar's bucket count (``BUCKETS`` by default),
  the same on every host and in every process (BLAKE2b, not Python's salted ``hash``).
- A bucket's owner among the live hosts is the host with the highest BLAKE2b score of (host, bucket):
  rendezvous (highest random weight) hashing. When a host joins, it takes only the buckets it now
  scores highest on; when one leaves, only its buckets move, each to the host that scored second. No
  other bucket changes owner, which is what "consistent" means here.

With 256 buckets and 500 symbols, four hosts get about 125 symbols each (a spread of some ten either
way); more buckets would balance better, at the price of more claim rows per bar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

BUCKETS = 256


def _score(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def bucket_of(symbol: str, buckets: int = BUCKETS) -> int:
    """The bucket ``symbol`` falls in, 0..buckets-1."""
    return _score("symbol:" + symbol) % buckets


def owner(bucket: int, hosts: Iterable[str]) -> str | None:
    """The live host that owns ``bucket`` (highest rendezvous score; ties by name), None without hosts."""
    best: tuple[int, str] | None = None
    for host in hosts:
        candidate = (_score(f"{host}|{bucket}"), host)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


def by_bucket(symbols: Sequence[str], buckets: int = BUCKETS) -> dict[int, list[str]]:
    """The non-empty buckets of ``symbols``, each with its symbols in the universe's order."""
    out: dict[int, list[str]] = {}
    for symbol in symbols:
        out.setdefault(bucket_of(symbol, buckets), []).append(symbol)
    return out


def share_of(
    host: str, hosts: Sequence[str], symbols: Sequence[str], buckets: int = BUCKETS
) -> dict[int, list[str]]:
    """The non-empty buckets (with their symbols) that ``host`` owns among ``hosts``."""
    live = sorted(set(hosts))
    return {b: s for b, s in by_bucket(symbols, buckets).items() if owner(b, live) == host}
