"""The ``/_paper`` controls answer loopback clients only, whatever address the server binds."""

import httpx

from lib.paper_exchange import PaperExchangeConfig, create_app


def client_from(host: str) -> httpx.AsyncClient:
    app = create_app(PaperExchangeConfig(state_path=None))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(host, 50000)), base_url="http://paper"
    )


async def test_controls_refuse_a_client_that_is_not_on_loopback() -> None:
    async with client_from("192.0.2.10") as remote:
        assert (await remote.post("/_paper/accounts", json={"balance": "10"})).status_code == 403
        assert (await remote.get("/_paper/clock")).status_code == 403
        assert (await remote.get("/v5/market/time")).json()["retCode"] == 0


async def test_controls_answer_a_loopback_client() -> None:
    async with client_from("127.0.0.1") as local:
        assert (await local.get("/_paper/clock")).status_code == 200
