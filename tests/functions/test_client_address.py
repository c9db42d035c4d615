"""Issue 9, item 8: the audit trail records the address we can vouch for, not the one a client claims.

Over HTTP: a trading-preferences update, then the audit row read back as the service role. Then the
rule itself, without HTTP: which hop of ``X-Forwarded-For`` is believed, and when.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from lib.config import Settings
from lib.db.session import Caller, Database
from lib.http import client_address
from lib.http.server import create_functions_app, serve_in_thread
from lib.services.auth.users import LocalUser
from tests.functions.conftest import bearer

PREFS = "/functions/v1/trading-preferences"
FORGED = "203.0.113.66"


async def _audited(db: Database, user_id: str) -> list[dict[str, Any]]:
    async with db.read(Caller.service()) as conn:
        return await (
            await conn.execute(
                "select host(ip) as ip, user_agent from audit_log "
                "where table_name = 'trading_preferences' and user_id = %s order by id",
                (user_id,),
            )
        ).fetchall()


async def _update(base_url: str, user: LocalUser, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            PREFS, json={"action": "update", "leverage": 4}, headers={**bearer(user.token), **headers}
        )
    assert response.status_code == 200, response.text


async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_not_what_the_audit_records(
    functions_url: str, db: Database, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    await _update(functions_url, user, {"X-Forwarded-For": f"{FORGED}, 198.51.100.7"})
    (row,) = await _audited(db, user.id)
    assert row["ip"] == "127.0.0.1"  # the peer: no proxy is trusted by default


@pytest.fixture(scope="module")
def behind_a_proxy_url(settings: Settings) -> Iterator[str]:
    """A functions server that trusts 127.0.0.1 (this test) as its reverse proxy."""
    trusting = replace(
        settings, http=replace(settings.http, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    )
    with serve_in_thread(create_functions_app(trusting)) as url:
        yield url


async def test_from_a_trusted_proxy_the_client_it_names_is_recorded(
    behind_a_proxy_url: str, db: Database, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    # The client wrote the first entry; our proxy (127.0.0.1) appended the address it saw.
    await _update(behind_a_proxy_url, user, {"X-Forwarded-For": f"{FORGED}, 198.51.100.7"})
    (row,) = await _audited(db, user.id)
    assert row["ip"] == "198.51.100.7"


async def test_a_malformed_forwarded_for_from_a_trusted_proxy_falls_back_to_the_proxy(
    behind_a_proxy_url: str, db: Database, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    await _update(behind_a_proxy_url, user, {"X-Forwarded-For": "not-an-ip"})
    (row,) = await _audited(db, user.id)
    assert row["ip"] == "127.0.0.1"


async def test_a_huge_user_agent_is_cut_before_the_audit_trail(
    functions_url: str, db: Database, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    await _update(functions_url, user, {"User-Agent": "U" * 20_000})
    (row,) = await _audited(db, user.id)
    assert row["user_agent"] == "U" * client_address.MAX_USER_AGENT_CHARS


@pytest.mark.parametrize(
    "incoming",
    ["short", "x" * 65, "has space here", "semi;colon-id", "trace-\u00e9\u00e9\u00e9\u00e9", "a/b/c/d/e/f"],
)
async def test_a_request_id_that_is_not_a_plain_token_is_replaced(
    http: httpx.AsyncClient, incoming: str
) -> None:
    response = await http.post(
        "/functions/v1/signals-api",
        json={"action": "status"},
        headers={"x-request-id": incoming.encode()},
    )
    assert response.status_code == 200
    returned = response.headers["x-request-id"]
    assert returned != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", returned)


# The rule, without HTTP.

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.0.2.1", ["203.0.113.9"], "192.0.2.1"),  # untrusted peer: its header means nothing
        ("10.0.0.2", [], "10.0.0.2"),  # a proxy that added nothing
        ("10.0.0.2", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.2", ["198.51.100.1, 203.0.113.9"], "203.0.113.9"),  # the client cannot prepend
        ("10.0.0.2", ["203.0.113.9, 10.0.0.3"], "203.0.113.9"),  # two of our proxies in a row
        ("10.0.0.2", ["203.0.113.9", "10.0.0.3"], "203.0.113.9"),  # the header sent twice
        ("10.0.0.2", ["garbage, 10.0.0.3"], "10.0.0.3"),  # malformed: the last hop vouched for
        ("10.0.0.2", ["10.0.0.4, 10.0.0.3"], "10.0.0.4"),  # all ours: the farthest one
        ("::ffff:10.0.0.2", ["203.0.113.9"], "203.0.113.9"),  # an IPv4 peer on a dual-stack socket
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("10.0.0.2", [" 203.0.113.9 "], "203.0.113.9"),
        (None, ["203.0.113.9"], None),
    ],
)
def test_which_address_is_believed(peer: str | None, forwarded: list[str], expected: str | None) -> None:
    assert client_address.client_ip(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_peer_is_always_the_client() -> None:
    assert client_address.client_ip("10.0.0.2", ["203.0.113.9"], ()) == "10.0.0.2"


def test_a_request_id_rule() -> None:
    assert client_address.request_id("trace-1234.abcd_EF") == "trace-1234.abcd_EF"
    assert client_address.request_id("abcdefgh\n") != "abcdefgh\n"
    assert len(client_address.request_id("")) == 32
