"""signals-api through HTTP: anyone reads signals, filtered, newest first, paged by an opaque cursor.

Signals are inserted as the service role (the scanner's role). Each test uses its own symbol and
filters by it, so rows from other tests never change what it sees. Test rows are ``expired``, so no
executor or queue check running against the same database treats them as work.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from lib.db.session import Caller, Database
from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer

URL = "/functions/v1/signals-api"
FIELDS = {
    "id",
    "symbol",
    "category",
    "timeframe",
    "direction",
    "algorithm",
    "score",
    "confidence",
    "entry_price",
    "stop_loss",
    "take_profit",
    "atr",
    "components",
    "bar_time",
    "expires_at",
    "status",
    "created_at",
}
# Explicit creation times an hour back: every test row is older than a row created "now".
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def new_symbol() -> str:
    return "T" + uuid.uuid4().hex[:12].upper()


def signal(symbol: str, n: int, **overrides: Any) -> dict[str, Any]:
    """A valid signal row; ``n`` keeps the bar (and so the unique key) distinct within a symbol."""
    row: dict[str, Any] = {
        "symbol": symbol,
        "category": "linear",
        "timeframe": "15",
        "direction": "LONG",
        "algorithm": "unirail_core",
        "score": 85.5,
        "confidence": 0.9,
        "entry_price": 100.0,
        "atr": 1.25,
        "components": {"trend": 40.5, "momentum": 30, "volume": 15},
        "bar_time": BASE - timedelta(days=1, minutes=n),
        "status": "expired",
        "created_at": BASE - timedelta(minutes=n),
        **overrides,
    }
    row.setdefault("expires_at", row["bar_time"] + timedelta(hours=1))
    # The table's check: LONG has stop < entry < take profit, SHORT the mirror. Halving and doubling
    # keep the levels exact in binary, so they read back as the same JSON numbers.
    below, above = row["entry_price"] / 2, row["entry_price"] * 2
    if row["direction"] == "LONG":
        row.setdefault("stop_loss", below)
        row.setdefault("take_profit", above)
    else:
        row.setdefault("stop_loss", above)
        row.setdefault("take_profit", below)
    return row


async def insert(db: Database, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Insert as the service role; returns the rows with their ``id`` and ``created_at``."""
    stored = []
    async with db.write(Caller.service()) as conn:
        for row in rows:
            values = {k: Jsonb(v) if k == "components" else v for k, v in row.items()}
            query = sql.SQL("insert into signals ({}) values ({}) returning id, created_at").format(
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder() * len(values)),
            )
            returned = await (await conn.execute(query, list(values.values()))).fetchone()
            assert returned is not None
            stored.append({**row, **returned})
    return stored


def newest_first(rows: list[dict[str, Any]]) -> list[str]:
    """The ids in the API's order: created_at desc, then id desc (uuid order is byte order, as in SQL)."""
    return [str(r["id"]) for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]


async def list_signals(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, **filters: Any
) -> httpx.Response:
    return await http.post(URL, json={"action": "list", **filters}, headers=headers)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["signals"]]


def error_locs(response: httpx.Response) -> list[str]:
    return [part for error in response.json()["error"]["details"]["errors"] for part in error["loc"]]


async def test_anyone_without_a_token_reads_a_signal_with_every_field_and_numbers_as_numbers(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    (row,) = await insert(
        db, signal(symbol, 0, score=87.25, confidence=0.8125, entry_price=2.5, stop_loss=2.1, take_profit=3.3)
    )

    response = await http.post(URL, json={"action": "list", "symbol": symbol})

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    (got,) = body["signals"]
    assert set(got) == FIELDS
    assert got["id"] == str(row["id"])
    assert (got["symbol"], got["category"], got["timeframe"]) == (symbol, "linear", "15")
    assert (got["direction"], got["algorithm"], got["status"]) == ("LONG", "unirail_core", "expired")
    assert (got["score"], got["confidence"]) == (87.25, 0.8125)
    assert (got["entry_price"], got["stop_loss"], got["take_profit"], got["atr"]) == (2.5, 2.1, 3.3, 1.25)
    assert got["components"] == {"trend": 40.5, "momentum": 30, "volume": 15}
    for field in ("bar_time", "expires_at", "created_at"):
        assert datetime.fromisoformat(got[field]) == row[field], field


async def test_a_signed_in_user_the_anon_key_and_no_token_all_see_the_same_signals(
    http: httpx.AsyncClient, db: Database, anon_key: str, make_user: Callable[[], LocalUser]
) -> None:
    symbol = new_symbol()
    rows = await insert(db, *(signal(symbol, n) for n in range(3)))

    as_user = await list_signals(http, bearer(make_user().token), symbol=symbol)
    as_anon_key = await list_signals(http, bearer(anon_key), symbol=symbol)
    no_token = await list_signals(http, symbol=symbol)

    assert ids(as_user) == newest_first(rows)
    assert as_user.json() == as_anon_key.json() == no_token.json()


async def test_a_get_with_query_parameters_lists_signals_too(http: httpx.AsyncClient, db: Database) -> None:
    symbol = new_symbol()
    rows = await insert(db, *(signal(symbol, n) for n in range(2)))

    response = await http.get(URL, params={"action": "list", "symbol": symbol, "limit": "1"})

    assert ids(response) == newest_first(rows)[:1]
    assert response.json()["next_cursor"] is not None


async def test_the_symbol_filter_returns_only_that_symbols_signals(
    http: httpx.AsyncClient, db: Database
) -> None:
    mine, other = new_symbol(), new_symbol()
    rows = await insert(db, signal(mine, 0), signal(other, 0), signal(mine, 1), signal(other, 1))

    response = await list_signals(http, symbol=mine)

    assert ids(response) == newest_first([r for r in rows if r["symbol"] == mine])


# Five signals of one symbol, differing in every filtered dimension; scores sit on the boundary.
FILTER_SET: list[dict[str, Any]] = [
    {"algorithm": "unirail_core", "timeframe": "15", "direction": "LONG", "score": 80},
    {"algorithm": "quantum_ai", "timeframe": "15", "direction": "SHORT", "score": 95.25},
    {"algorithm": "unirail_core", "timeframe": "60", "direction": "SHORT", "score": 79.99},
    {"algorithm": "quantum_ai", "timeframe": "60", "direction": "LONG", "score": 100},
    {"algorithm": "unirail_core", "timeframe": "D", "direction": "LONG", "score": 0},
]
SINCE = BASE - timedelta(minutes=2)  # exactly the third row's creation time: inclusive


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ({"algorithm": "quantum_ai"}, lambda r: r["algorithm"] == "quantum_ai"),
        ({"timeframe": "60"}, lambda r: r["timeframe"] == "60"),
        ({"direction": "SHORT"}, lambda r: r["direction"] == "SHORT"),
        ({"min_score": 80}, lambda r: r["score"] >= 80),
        ({"min_score": 100}, lambda r: r["score"] == 100),
        ({"min_score": 0}, lambda r: True),
        ({"since": SINCE.isoformat()}, lambda r: r["created_at"] >= SINCE),
        (
            {"algorithm": "unirail_core", "direction": "LONG", "min_score": 50},
            lambda r: r["algorithm"] == "unirail_core" and r["direction"] == "LONG" and r["score"] >= 50,
        ),
    ],
    ids=[
        "algorithm",
        "timeframe",
        "direction",
        "min_score",
        "min_score_max",
        "min_score_0",
        "since",
        "combined",
    ],
)
async def test_each_filter_returns_exactly_the_matching_signals_newest_first(
    http: httpx.AsyncClient, db: Database, filters: dict[str, Any], matches: Callable[[dict[str, Any]], bool]
) -> None:
    symbol = new_symbol()
    rows = await insert(db, *(signal(symbol, n, **values) for n, values in enumerate(FILTER_SET)))
    expected = newest_first([r for r in rows if matches(r)])
    assert 0 < len(expected) <= len(rows)

    response = await list_signals(http, symbol=symbol, **filters)

    assert ids(response) == expected


async def test_since_includes_a_signal_created_at_exactly_that_instant_in_any_timezone(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    at, _one_minute_before = await insert(db, signal(symbol, 0), signal(symbol, 1))
    in_new_york = at["created_at"].astimezone(timezone(timedelta(hours=-5)))

    response = await list_signals(http, symbol=symbol, since=in_new_york.isoformat())

    assert ids(response) == [str(at["id"])]


async def test_signals_come_newest_first_with_equal_times_ordered_by_id(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    tie = BASE - timedelta(minutes=5)
    rows = await insert(
        db,
        signal(symbol, 0, created_at=BASE - timedelta(minutes=9)),
        signal(symbol, 1, created_at=tie),
        signal(symbol, 2, created_at=BASE),
        signal(symbol, 3, created_at=tie),
        signal(symbol, 4, created_at=tie),
    )

    response = await list_signals(http, symbol=symbol)

    got = ids(response)
    assert got == newest_first(rows)
    assert got[0] == str(rows[2]["id"])
    assert got[-1] == str(rows[0]["id"])
    assert got[1:4] == sorted(got[1:4], reverse=True)  # the three ties, by id descending


async def test_without_filters_the_newest_signals_come_first(http: httpx.AsyncClient, db: Database) -> None:
    (row,) = await insert(db, signal(new_symbol(), 0, created_at=datetime.now(UTC)))

    response = await list_signals(http, limit=200)

    assert response.status_code == 200
    created = [datetime.fromisoformat(s["created_at"]) for s in response.json()["signals"]]
    assert created == sorted(created, reverse=True)
    assert created[0] >= row["created_at"]  # nothing older may come before a row this new


async def test_the_default_page_is_50_signals_with_a_cursor_to_the_rest(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    rows = await insert(db, *(signal(symbol, n) for n in range(51)))

    first = await list_signals(http, symbol=symbol)
    rest = await list_signals(http, symbol=symbol, cursor=first.json()["next_cursor"])

    assert ids(first) == newest_first(rows)[:50]
    assert ids(rest) == newest_first(rows)[50:]
    assert rest.json()["next_cursor"] is None


async def test_three_pages_return_every_signal_exactly_once_even_when_times_tie_across_a_page_edge(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    # Pages of 3 over 7 rows: the tie of four spans the first and second pages.
    times = (
        [BASE, BASE - timedelta(minutes=1)]
        + [BASE - timedelta(minutes=2)] * 4
        + [BASE - timedelta(minutes=3)]
    )
    rows = await insert(db, *(signal(symbol, n, created_at=t) for n, t in enumerate(times)))

    pages: list[list[str]] = []
    cursors: list[str | None] = []
    cursor = None
    for _ in range(3):
        response = await list_signals(http, symbol=symbol, limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append(ids(response))
        cursor = response.json()["next_cursor"]
        cursors.append(cursor)

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [p for page in pages for p in page] == newest_first(rows)
    assert None not in cursors[:2]
    assert cursors[2] is None


async def test_signals_inserted_between_page_fetches_cause_no_duplicate_and_no_gap(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    rows = await insert(db, *(signal(symbol, n) for n in range(6)))  # created BASE, BASE-1min, ...
    order = newest_first(rows)

    first = await list_signals(http, symbol=symbol, limit=2)
    # One newer than everything (an offset would now repeat a row), one into the unread range.
    newer, unread = await insert(
        db,
        signal(symbol, 100, created_at=datetime.now(UTC)),
        signal(symbol, 101, created_at=BASE - timedelta(minutes=3, seconds=30)),
    )
    seen = ids(first)
    cursor = first.json()["next_cursor"]
    while cursor is not None:
        response = await list_signals(http, symbol=symbol, limit=2, cursor=cursor)
        seen += ids(response)
        cursor = response.json()["next_cursor"]

    assert seen == [*order[:4], str(unread["id"]), *order[4:]]
    assert str(newer["id"]) not in seen  # it is newer than the first page: the next listing shows it
    assert ids(await list_signals(http, symbol=symbol, limit=1)) == [str(newer["id"])]


async def test_a_limit_of_200_is_served_and_above_200_is_refused_not_clamped(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    await insert(db, signal(symbol, 0))

    at_max = await list_signals(http, symbol=symbol, limit=200)
    for limit in (201, 1000, 0, -1):
        response = await list_signals(http, symbol=symbol, limit=limit)
        assert response.status_code == 422, limit
        assert response.json()["error"]["code"] == "invalid_request"
        assert "limit" in error_locs(response)

    assert len(ids(at_max)) == 1


async def test_a_garbage_or_tampered_cursor_is_a_422_naming_the_cursor(
    http: httpx.AsyncClient, db: Database
) -> None:
    symbol = new_symbol()
    await insert(db, *(signal(symbol, n) for n in range(2)))
    real = (await list_signals(http, symbol=symbol, limit=1)).json()["next_cursor"]
    flipped = real[:5] + ("A" if real[5] != "A" else "B") + real[6:]

    for cursor in (
        "garbage",
        "",
        flipped,
        real + "A",
        real[:-1],
        "x" * 5000,
        12345,
        "'; drop table signals;--",
    ):
        response = await list_signals(http, symbol=symbol, cursor=cursor)
        assert response.status_code == 422, cursor
        assert response.json()["error"]["code"] == "invalid_request"
        assert "cursor" in error_locs(response), response.json()

    assert ids(await list_signals(http, symbol=symbol, cursor=real))  # the untouched cursor still works


@pytest.mark.parametrize("field", ["symbols", "offset", "user_id", "status", "order_by"])
async def test_an_unknown_filter_field_is_refused(http: httpx.AsyncClient, field: str) -> None:
    response = await list_signals(http, **{field: "x"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in error_locs(response)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_score", -0.01),
        ("min_score", 100.01),
        ("min_score", "high"),
        ("since", "2026-11-24T10:00:00"),  # no timezone: ambiguous
        ("since", "yesterday"),
        ("direction", "long"),
        ("algorithm", "moon_ai"),
        ("timeframe", "7"),
        ("symbol", "btc-usdt"),
    ],
)
async def test_an_out_of_range_or_malformed_filter_value_is_refused_with_the_field_named(
    http: httpx.AsyncClient, field: str, value: Any
) -> None:
    response = await list_signals(http, **{field: value})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in error_locs(response)


async def test_the_action_must_be_named(http: httpx.AsyncClient) -> None:
    for body in ({}, {"symbol": "BTCUSDT"}, {"action": "search"}):
        response = await http.post(URL, json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_request"


async def test_the_status_action_answers_anyone(http: httpx.AsyncClient, anon_key: str) -> None:
    for headers in (None, bearer(anon_key)):
        response = await http.post(URL, json={"action": "status"}, headers=headers)
        assert response.status_code == 200
        assert response.json() == {"function": "signals-api", "status": "ok", "version": "1"}
