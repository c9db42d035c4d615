"""Reading signals for display: filters, newest first, with an opaque keyset cursor.

Pages are ordered by ``(created_at desc, id desc)``, the order of the index ``signals_created_idx``.
A page's cursor is the ``(created_at, id)`` of its last row and the next page is every row strictly
after it in that order. Unlike ``offset``, this does not shift when rows are inserted between fetches:
a newer row sorts before the cursor and is not read again by later pages, and a row landing in the
unread range is read exactly once. So paging never duplicates or skips a row that existed throughout.

The query runs as the caller's role (``Database.read(caller)``): row-level security decides what is
visible, not this module.

:func:`recent_candles` gives the chart beside a signal its candles: the exchange's public klines of a
symbol the deployment's environment lists, through the process's market access (its rate limiter).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from lib.core.clock import Clock
from lib.core.signal import Signal
from lib.db.session import Caller, Database
from lib.errors import InvalidRequest
from lib.exchange.access import MarketAccess
from lib.exchange.models import Klines
from lib.services.instruments.cache import deployment_environment, get_snapshot
from lib.services.symbol_validation import listed
from lib.stores import signals as signals_store

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DEFAULT_CANDLES = 200
MAX_CANDLES = 500
CANDLE_CATEGORY = "linear"

# The cursor: version byte, created_at in microseconds since the Unix epoch (PostgreSQL's own
# precision, so the round trip is exact), the id's 16 bytes, then a 4-byte checksum; base64url
# without padding. The checksum is not a signature: anyone can build a cursor, and that is harmless,
# because a cursor only chooses where in the public, RLS-filtered order a page starts, and the
# filters are sent again with every page. It is there so that a truncated, edited or hand-made
# cursor is refused (422) instead of silently paging from a wrong position.
_CURSOR_VERSION = 1
_CURSOR_BODY = struct.Struct(">Bq16s")
_CHECKSUM_BYTES = 4
_CURSOR_BYTES = _CURSOR_BODY.size + _CHECKSUM_BYTES
_CURSOR_CHARS = -(-_CURSOR_BYTES * 4 // 3)  # base64 without padding
_CURSOR_TEXT = re.compile(rf"^[A-Za-z0-9_-]{{{_CURSOR_CHARS}}}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order: the last row already read."""

    created_at: datetime
    id: UUID


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_CHECKSUM_BYTES, person=b"signals-cursor").digest()


def encode_cursor(created_at: datetime, signal_id: UUID) -> str:
    """The opaque cursor for the position of the row ``(created_at, signal_id)``."""
    if created_at.tzinfo is None:
        raise ValueError("a cursor's created_at must be timezone-aware")
    micros = (created_at - _EPOCH) // _MICROSECOND
    body = _CURSOR_BODY.pack(_CURSOR_VERSION, micros, signal_id.bytes)
    return base64.urlsafe_b64encode(body + _checksum(body)).rstrip(b"=").decode("ascii")


def _invalid_cursor(why: str) -> InvalidRequest:
    # The same shape as a schema error, so clients read every 422 the same way.
    return InvalidRequest(
        "the cursor is not one this API issued",
        details={"errors": [{"loc": ["cursor"], "msg": why, "type": "invalid_cursor"}]},
    )


def decode_cursor(text: str) -> Cursor:
    """The position a cursor from :func:`encode_cursor` names. Raises InvalidRequest for anything else."""
    if not _CURSOR_TEXT.match(text):
        raise _invalid_cursor("wrong length or characters")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _invalid_cursor("not base64url") from None
    # base64 ignores the unused low bits of the last character: accept only the canonical spelling,
    # so that no edit of the text, however small, decodes to the same bytes.
    if len(raw) != _CURSOR_BYTES or base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise _invalid_cursor("not canonical base64url")
    body, checksum = raw[: _CURSOR_BODY.size], raw[_CURSOR_BODY.size :]
    if not hmac.compare_digest(checksum, _checksum(body)):
        raise _invalid_cursor("checksum mismatch")
    version, micros, id_bytes = _CURSOR_BODY.unpack(body)
    if version != _CURSOR_VERSION:
        raise _invalid_cursor("unknown cursor version")
    try:
        created_at = _EPOCH + micros * _MICROSECOND
    except OverflowError:
        raise _invalid_cursor("timestamp out of range") from None
    return Cursor(created_at=created_at, id=UUID(bytes=id_bytes))


@dataclass(frozen=True, slots=True)
class SignalFilters:
    """What to narrow the list to; ``None`` means "any". ``since`` is inclusive."""

    symbol: str | None = None
    algorithm: str | None = None
    timeframe: str | None = None
    direction: str | None = None
    min_score: float | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class SignalPage:
    """One page, newest first; ``next_cursor`` is None on the last page."""

    signals: list[Signal]
    next_cursor: str | None


async def list_signals(
    db: Database,
    caller: Caller,
    filters: SignalFilters,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> SignalPage:
    """One page of the signals ``caller`` may see, newest first, after ``cursor`` if given.

    Raises InvalidRequest for a cursor this module did not issue.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    position = decode_cursor(cursor) if cursor is not None else None
    # One row more than asked tells whether another page exists, without a count.
    rows = await signals_store.newest_first(
        db,
        caller,
        limit=limit + 1,
        symbol=filters.symbol,
        algorithm=filters.algorithm,
        timeframe=filters.timeframe,
        direction=filters.direction,
        min_score=filters.min_score,
        since=filters.since,
        after=None if position is None else (position.created_at, position.id),
    )
    signals = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = signals[-1]
        next_cursor = encode_cursor(last.created_at, last.id)
    return SignalPage(signals=signals, next_cursor=next_cursor)


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """A symbol's candles, oldest first, from the exchange of ``environment``; the last may be open."""

    environment: str
    klines: Klines


async def recent_candles(
    db: Database,
    market: MarketAccess,
    clock: Clock,
    *,
    symbol: str,
    timeframe: str,
    limit: int = DEFAULT_CANDLES,
    end_ms: int | None = None,
) -> CandleSeries:
    """The last ``limit`` candles of ``symbol`` (up to ``end_ms`` if given) on the deployment's exchange.

    The symbol must be one the deployment's environment lists (the shared instruments cache): an
    unknown one is ``NotFound`` with suggestions, before the exchange is asked for candles.
    """
    if not 1 <= limit <= MAX_CANDLES:
        raise ValueError(f"limit must be between 1 and {MAX_CANDLES}, got {limit}")
    environment = await deployment_environment(db)
    snapshot = await get_snapshot(db, market, CANDLE_CATEGORY, clock, environment=environment)
    listed(snapshot.filters, symbol, category=CANDLE_CATEGORY, environment=environment)
    async with market.client(environment) as client:
        klines = await client.klines(CANDLE_CATEGORY, symbol, timeframe, limit=limit, end=end_ms)
    return CandleSeries(environment=environment, klines=klines)
