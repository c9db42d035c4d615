"""unireli-core-scanner through HTTP: the service role scans; everyone else is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from lib.db.session import Caller, Database
from lib.ops.stack_replay import stack_symbols
from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer

URL = "/functions/v1/unireli-core-scanner"
PAIRS = stack_symbols()  # what the session's paper exchange serves (the stack's markets)


async def test_the_service_role_scans_the_tickers_universe_and_gets_the_run_back(
    http: httpx.AsyncClient, service_key: str, db: Database
) -> None:
    response = await http.post(URL, json={"timeframe": "5", "dry_run": True}, headers=bearer(service_key))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] in ("succeeded", "partial")
    assert (body["timeframe"], body["algorithm"], body["dry_run"]) == ("5", "unirail_core", True)
    assert body["threshold"] == 80  # scanner.threshold from app_settings
    assert body["symbols_requested"] == len(PAIRS)
    assert body["symbols_scanned"] + len(body["errors"]) == len(PAIRS)
    assert body["signals_created"] == 0
    assert body["signal_ids"] == []
    assert body["duration_ms"] >= 0
    async with db.read(Caller.service()) as conn:
        run = await (
            await conn.execute("select * from scan_runs where id = %s", (uuid.UUID(body["run_id"]),))
        ).fetchone()
    assert run is not None
    assert (run["status"], run["dry_run"], run["symbols_scanned"]) == (
        body["status"],
        True,
        body["symbols_scanned"],
    )


async def test_a_stored_scan_returns_its_signal_ids_and_each_failing_symbol(
    http: httpx.AsyncClient, service_key: str, db: Database
) -> None:
    symbols = ["ETHUSDT", "SOLUSDT", "NOSUCHUSDT"]
    request = {"timeframe": "5", "symbols": symbols, "min_score": 0, "algorithm": "unirail_core"}
    response = await http.post(URL, json=request, headers=bearer(service_key))
    body = response.json()
    ids = [uuid.UUID(i) for i in body["signal_ids"]]
    try:
        assert response.status_code == 200, response.text
        assert body["status"] == "partial"
        assert [e["symbol"] for e in body["errors"]] == ["NOSUCHUSDT"]
        assert body["errors"][0]["code"] == "exchange_rejected"
        assert body["symbols_scanned"] == 2
        assert body["signals_created"] + body["duplicates"] == body["qualified"] == body["candidates"] == 2
        async with db.read(Caller.service()) as conn:
            rows = await (await conn.execute("select * from signals where id = any(%s)", (ids,))).fetchall()
        assert len(rows) == body["signals_created"]
        assert {r["symbol"] for r in rows} <= {"ETHUSDT", "SOLUSDT"}
    finally:  # not work for the executor: hand every 'new' row of this bar back
        async with db.write(Caller.service()) as conn:
            await conn.execute(
                "update signals set status = 'skipped' where status = 'new' and symbol = any(%s) "
                "and timeframe = '5' and algorithm = 'unirail_core' and bar_time = %s",
                (symbols, body.get("bar_time")),
            )


async def test_without_a_token_even_status_is_refused_since_verify_jwt_is_on(http: httpx.AsyncClient) -> None:
    response = await http.post(URL, json={"action": "status"}, headers={})

    assert response.status_code == 401
    assert response.json() == {"msg": "Invalid JWT"}


async def test_status_answers_any_valid_token(http: httpx.AsyncClient, anon_key: str) -> None:
    response = await http.post(URL, json={"action": "status"}, headers=bearer(anon_key))

    assert response.status_code == 200
    assert response.json() == {"function": "unireli-core-scanner", "status": "ok", "version": "1"}


async def test_anon_and_signed_in_users_may_not_scan(
    http: httpx.AsyncClient, anon_key: str, make_user: Callable[[], LocalUser]
) -> None:
    for token in (anon_key, make_user().token):
        for body in ({"timeframe": "5"}, {"action": "scan", "timeframe": "5", "dry_run": True}):
            response = await http.post(URL, json=body, headers=bearer(token))
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "body",
    [
        {"timeframe": "2"},
        {"timeframe": "5", "algorithm": "magic"},
        {},
        {"timeframe": "5", "min_score": 101},
        {"timeframe": "5", "max_symbols": 0},
        {"timeframe": "5", "symbols": []},
        {"timeframe": "5", "symbols": ["eth/btc"]},
        {"timeframe": "5", "surprise": True},
        {"action": "rescan", "timeframe": "5"},
    ],
)
async def test_bad_input_is_a_422_naming_the_problem(
    http: httpx.AsyncClient, service_key: str, body: dict[str, object]
) -> None:
    response = await http.post(URL, json=body, headers=bearer(service_key))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_openapi_documents_the_scanner(http: httpx.AsyncClient) -> None:
    document = (await http.get("/functions/v1/openapi.json")).json()

    assert "/functions/v1/unireli-core-scanner" in document["paths"]
    assert "RunScan" in document["components"]["schemas"]
