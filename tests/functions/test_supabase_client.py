"""The official supabase Python client works against the functions server unchanged."""

from __future__ import annotations

from collections.abc import Callable

from lib.services.auth.users import LocalUser
from supabase import create_client


def test_functions_invoke_with_the_anon_key_returns_the_health_document(
    functions_url: str, anon_key: str
) -> None:
    client = create_client(functions_url, anon_key)

    document = client.functions.invoke("diagnostics", invoke_options={"body": {}, "responseType": "json"})

    assert isinstance(document, dict)
    assert document["status"] in ("healthy", "degraded", "down")
    assert document["checks"] is None  # anon sees the summary only


def test_the_same_client_with_a_users_token_reads_that_users_preferences(
    functions_url: str, anon_key: str, make_user: Callable[[], LocalUser]
) -> None:
    user = make_user()
    client = create_client(functions_url, anon_key)
    client.functions.set_auth(user.token)

    preferences = client.functions.invoke(
        "trading-preferences", invoke_options={"body": {"action": "get"}, "responseType": "json"}
    )

    assert isinstance(preferences, dict)
    assert preferences["user_id"] == user.id
    assert preferences["auto_trade_enabled"] is False
