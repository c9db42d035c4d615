"""A user's API key and secret never leave the request in plain text: not to the database, not to the
logs, not back in any answer.

One scenario runs once for the module, on its own functions server wired to the test paper exchange:
connect, read the status, try a wrong secret and a malformed key, disconnect, disconnect again. The
database is dumped with ``pg_dump --data-only`` while the account exists and again after it is gone
(so the audit trail of both the insert and the delete is covered), every log record of the process is
captured at DEBUG (the server runs in a thread of this process, so its ``logging`` records reach the
root logger here), and every response body is kept.
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from lib.config import Settings
from lib.db.embedded import bin_path
from lib.db.session import Caller, Database
from lib.db.target import DatabaseTarget
from lib.exchange.access import MarketAccess
from lib.exchange.trading import PybitExchange
from lib.http.server import create_functions_app, serve_in_thread
from lib.log import JsonFormatter
from lib.paper_exchange.server import create_paper_account
from lib.services.auth.users import create_local_user

URL = "/functions/v1/trading-account"


class CollectingHandler(logging.Handler):
    """Keeps every record in every form a log sink could write it: JSON line, plain text, raw fields."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._json = JsonFormatter()
        self._plain = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self._json.format(record))
        self.lines.append(self._plain.format(record))  # includes any exception text
        self.lines.append(repr(record.__dict__))  # args, extra fields, before any redaction


@dataclass
class Scenario:
    api_key: str
    api_secret: str
    wrong_secret: str
    account_id: str = ""
    responses: dict[str, httpx.Response] = field(default_factory=dict)
    dumps: list[str] = field(default_factory=list)
    ciphertexts: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


def pg_dump_data(admin_url: str) -> str:
    """Every row of every table of the test database, as SQL text."""
    result = subprocess.run(
        [str(bin_path("pg_dump")), "--data-only", f"--dbname={admin_url}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


async def ciphertexts_of(db: Database, account_id: str) -> list[str]:
    async with db.read(Caller.service()) as conn:
        row = await (
            await conn.execute(
                "select api_key_encrypted, api_secret_encrypted from user_trading_accounts where id = %s",
                (account_id,),
            )
        ).fetchone()
    assert row is not None
    return [row["api_key_encrypted"], row["api_secret_encrypted"]]


@pytest.fixture(scope="module")
async def scenario(
    settings: Settings,
    stack: DatabaseTarget,
    db: Database,
    owner_conn: psycopg.Connection,
    paper_exchange_url: str,
) -> Scenario:
    paper = create_paper_account(paper_exchange_url)
    user = create_local_user(
        owner_conn, f"leak-{uuid.uuid4().hex[:12]}@test.local", settings.jwt_secret.reveal()
    )
    run = Scenario(paper.api_key, paper.api_secret, wrong_secret="B4dSecret" + paper.api_secret[9:])
    headers = {"Authorization": f"Bearer {user.token}"}
    connect = {"action": "connect", "environment": "paper", "api_key": paper.api_key}

    handler = CollectingHandler()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        extras = {
            "exchange": PybitExchange(paper_url=paper_exchange_url),
            "market": MarketAccess(paper_url=paper_exchange_url),
        }
        with serve_in_thread(create_functions_app(settings, **extras)) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as http:

                async def call(name: str, body: dict[str, str]) -> None:
                    run.responses[name] = await http.post(URL, json=body)

                await call("connect", {**connect, "api_secret": paper.api_secret})
                run.account_id = run.responses["connect"].json()["account"]["id"]
                await call("account_status", {"action": "account_status"})
                await call("wrong_secret", {**connect, "api_secret": run.wrong_secret})
                await call(
                    "malformed_key",
                    {**connect, "api_key": paper.api_key + " !", "api_secret": paper.api_secret},
                )
                run.ciphertexts = await ciphertexts_of(db, run.account_id)
                run.dumps.append(pg_dump_data(stack.admin_url))
                await call("disconnect", {"action": "disconnect", "environment": "paper"})
                await call("disconnect_again", {"action": "disconnect", "environment": "paper"})
                run.dumps.append(pg_dump_data(stack.admin_url))
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    run.logs = handler.lines
    return run


def test_the_scenario_went_as_a_user_would_see_it(scenario: Scenario) -> None:
    statuses = {name: response.status_code for name, response in scenario.responses.items()}

    assert statuses == {
        "connect": 200,
        "account_status": 200,
        "wrong_secret": 400,
        "malformed_key": 422,
        "disconnect": 200,
        "disconnect_again": 404,
    }


def test_no_database_column_holds_the_key_or_the_secret_in_plain_text(scenario: Scenario) -> None:
    while_connected, after_disconnect = scenario.dumps

    # The dump really holds the account: its ciphertexts and its audit trail are in it.
    for token in scenario.ciphertexts:
        assert token in while_connected
    assert scenario.account_id in after_disconnect  # the audit log keeps the deleted row, redacted
    for dump in scenario.dumps:
        assert scenario.api_key not in dump
        assert scenario.api_secret not in dump
        assert scenario.wrong_secret not in dump


def test_no_log_record_holds_the_key_or_the_secret(scenario: Scenario) -> None:
    text = "\n".join(scenario.logs)

    # The server's records were captured: the calls and the connect event are there.
    assert '"event":"trading_account_connected"' in text
    assert '"function":"trading-account","action":"connect"' in text
    assert '"status":400' in text
    assert scenario.api_key not in text
    assert scenario.api_secret not in text
    assert scenario.wrong_secret not in text


def test_no_response_body_holds_the_key_or_the_secret(scenario: Scenario) -> None:
    for name, response in scenario.responses.items():
        assert response.text, name
        assert scenario.api_key not in response.text, name
        assert scenario.api_secret not in response.text, name
        assert scenario.wrong_secret not in response.text, name
    assert scenario.responses["account_status"].json()["accounts"][0]["key_hint"] == scenario.api_key[-4:]
