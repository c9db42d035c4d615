"""The hostile corpus: every body issue 9 found, sent to every function and action, as every caller.

For each function in the registry, each of its actions (and no action at all), each hostile body
below, and each caller (no token, the anon key, a user's token, the service key), the answer must be:

- never a 5xx;
- on a 4xx, the JSON error envelope (or Supabase's ``{"msg": "Invalid JWT"}`` on a 401);
- without the submitted value: every hostile string carries a marker that must not come back;
- small: a body that asks for 200 KB to be repeated does not get it.

And while the corpus runs, every log line the adapter writes stays small and never holds the marker.
Odd tokens (right secret, odd claims) go to every function too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from lib.config import Settings
from lib.http.registry import registry
from lib.services.auth import tokens
from lib.services.auth.users import LocalUser, create_local_user
from tests.functions.conftest import bearer
from tests.functions.test_adapter import adapter_log

MARK = "Zq9Mark"  # in every hostile string; it must never come back, nor reach a log line
MAX_RESPONSE_BYTES = 16 * 1024
MAX_LOG_LINE = 4096
_DEPTH_BOMB = 5000


def _bodies(action: str | None) -> dict[str, bytes]:
    """Every hostile body, for one action (None: the body names no action)."""
    head = f'"action": {json.dumps(action)}, ' if action is not None else ""
    digits = "9" * 5000
    bodies = {
        "deep-objects": "{" + head + '"x": ' + '{"a": ' * _DEPTH_BOMB + "1" + "}" * _DEPTH_BOMB + "}",
        "open-objects": '{"a":' * _DEPTH_BOMB,
        "deep-arrays": "[" * 100_000 + "]" * 100_000,
        "deep-arrays-in-field": "{" + head + '"x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "huge-int": "{" + head + f'"limit": {digits}, "leverage": {digits}' + "}",
        "huge-negative-int": "{" + head + f'"batch_size": -{digits}' + "}",
        "huge-float": "{" + head + f'"min_score": {digits}.5' + "}",
        "overflowing-float": "{" + head + '"min_score": 1e999999, "amount_usd": -1E+999999}',
        "nan": "{" + head + '"min_score": NaN}',
        "infinity": "{" + head + '"qty": Infinity, "price": -Infinity}',
        "nul-in-value": "{" + head + f'"symbol": "BTC\\u0000{MARK}"' + "}",
        "nul-in-key": "{" + head + f'"sym\\u0000{MARK}": 1' + "}",
        "nul-in-action": f'{{"action": "{action or ""}\\u0000{MARK}"}}',
        "lone-surrogate": "{" + head + f'"symbol": "\\ud800{MARK}", "cursor": "\\udfff{MARK}"' + "}",
        "lone-surrogate-action": f'{{"action": "{MARK}\\ud83d"}}',
        "huge-action": json.dumps({"action": MARK * 25_000}),
        "huge-value": "{" + head + f'"symbol": "{MARK * 20_000}", "client_order_id": "{MARK * 5000}"' + "}",
        "huge-key": "{" + head + f'"{MARK * 5000}": 1' + "}",
        # Not plain identifiers: a plain name of up to 64 characters is repeated (by design: typos).
        "many-keys": json.dumps(
            {**({"action": action} if action else {}), **{f"k-{i}-{MARK}": i for i in range(5000)}}
        ),
        "action-list": json.dumps({"action": [action or "status", MARK]}),
        "action-object": json.dumps({"action": {"$ne": MARK}}),
        "action-null": json.dumps({"action": None, "x": MARK}),
        "not-an-object": json.dumps([action, MARK]),
        "string-body": json.dumps(MARK * 1000),
        "marker-everywhere": json.dumps(
            {
                **({"action": action} if action else {}),
                "symbol": f"{MARK}!",
                "timeframe": MARK,
                "algorithm": MARK,
                "side": MARK,
                "environment": MARK,
                "api_key": f"{MARK}!",
                "since": MARK,
                "signal_id": MARK,
                "timeframes": [MARK],
                "leverage": MARK,
            }
        ),
    }
    encoded = {name: text.encode() for name, text in bodies.items()}
    encoded["invalid-utf8"] = b'{"action": "\xff\xfe' + MARK.encode() + b'"}'
    encoded["raw-nul-byte"] = b'{"action": "\x00' + MARK.encode() + b'"}'
    return encoded


@pytest.fixture(scope="module")
def callers(
    owner_conn: Any, settings: Settings, anon_key: str, service_key: str
) -> dict[str, dict[str, str]]:
    """Each kind of caller's headers: nobody, the anon key, a signed-in user, the service role."""
    user = create_local_user(owner_conn, f"corpus-{time.time_ns()}@test.local", settings.jwt_secret.reveal())
    return {
        "no-token": {},
        "anon": bearer(anon_key),
        "user": bearer(user.token),
        "service": bearer(service_key),
    }


def _check(response: httpx.Response, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    assert len(response.content) <= MAX_RESPONSE_BYTES, f"{where}: {len(response.content)} bytes"
    assert MARK not in response.text, f"{where}: the submitted value came back: {response.text[:300]}"
    if 400 <= response.status_code < 500:
        body = response.json()
        if response.status_code == 401:
            assert body == {"msg": "Invalid JWT"}, where
        else:
            error = body["error"]
            assert set(error) == {"code", "message", "details"}, where
            assert isinstance(error["code"], str), where
            assert isinstance(error["message"], str), where
            assert error["message"], where
            assert isinstance(error["details"], dict), where


def _cases() -> Iterator[tuple[str, str | None]]:
    for name, spec in sorted(registry().items()):
        for action in (*spec.actions, None):
            yield name, action


@pytest.mark.parametrize(("function", "action"), list(_cases()), ids=lambda v: str(v))
async def test_no_hostile_body_gets_a_5xx_an_echo_or_a_big_answer(
    http: httpx.AsyncClient, callers: dict[str, dict[str, str]], function: str, action: str | None
) -> None:
    sent = 0
    with adapter_log() as log:
        for body_name, body in _bodies(action).items():
            for caller, headers in callers.items():
                response = await http.post(
                    f"/functions/v1/{function}",
                    content=body,
                    headers={**headers, "content-type": "application/json"},
                )
                _check(response, f"{function} {action} {body_name} as {caller}")
                # Hostile bodies are refused; none of them runs an action.
                assert response.status_code >= 400, f"{function} {action} {body_name} as {caller}"
                sent += 1
    assert sent == len(_bodies(action)) * len(callers)
    assert all(len(raw) < MAX_LOG_LINE for raw in log.lines), max(log.lines, key=len)[:300]
    assert not [raw for raw in log.lines if MARK in raw]
    assert not [raw for raw in log.lines if '"level":"error"' in raw]


@pytest.mark.parametrize("function", sorted(registry()))
async def test_hostile_query_strings_on_get(http: httpx.AsyncClient, anon_key: str, function: str) -> None:
    for params in (
        {"action": MARK * 1000},
        {"action": f"check\x00{MARK}"},
        {f"{MARK}\x00": "1"},
        {"action": "check", "x": MARK},
    ):
        for headers in ({}, bearer(anon_key)):
            response = await http.get(f"/functions/v1/{function}", params=params, headers=headers)
            _check(response, f"GET {function} {next(iter(params))[:10]}")


def _odd_tokens(settings: Settings) -> dict[str, str]:
    secret = settings.jwt_secret.reveal()
    exp = int(time.time()) + 600
    claims: dict[str, dict[str, Any]] = {
        "role-list": {"role": ["service_role"], "exp": exp},
        "role-object": {"role": {"is": "service_role"}, "exp": exp},
        "role-unknown": {"role": f"{MARK}", "exp": exp},
        "role-huge": {"role": MARK * 500, "exp": exp},
        "role-nul": {"role": f"anon\u0000{MARK}", "exp": exp},
        "sub-not-uuid": {"role": "authenticated", "sub": f"not-a-uuid-{MARK}", "exp": exp},
        "sub-list": {"role": "authenticated", "sub": [MARK], "exp": exp},
        "no-sub": {"role": "authenticated", "exp": exp},
        "exp-string": {"role": "service_role", "exp": str(exp)},
        "exp-huge": {"role": "service_role", "exp": 10**400},
        "exp-missing": {"role": "service_role"},
        "iat-string": {"role": "anon", "exp": exp, "iat": MARK},
    }
    minted = {name: tokens.mint(c, secret) for name, c in claims.items()}
    minted["huge-token"] = "eyJ" + MARK * 10_000
    minted["garbage"] = f"{MARK}.{MARK}.{MARK}"
    return minted


@pytest.mark.parametrize("function", sorted(registry()))
async def test_odd_tokens_get_a_401_or_403_from_every_function(
    http: httpx.AsyncClient, settings: Settings, make_user: Callable[[], LocalUser], function: str
) -> None:
    for token_name, token in _odd_tokens(settings).items():
        for body in ({"action": "status"}, {}):
            response = await http.post(f"/functions/v1/{function}", json=body, headers=bearer(token))
            _check(response, f"{function} with {token_name}")
            assert response.status_code in (401, 403), f"{function} with {token_name}: {response.text[:200]}"
