"""The official supabase-py client's auth calls against the local /auth/v1, unchanged."""

from __future__ import annotations

import uuid

import pytest

from supabase import Client, ClientOptions, create_client
from supabase_auth.errors import AuthApiError


def _client(url: str, anon_key: str, ip: str) -> Client:
    options = ClientOptions(headers={"X-Forwarded-For": ip}, auto_refresh_token=False, persist_session=False)
    return create_client(url, anon_key, options)


def _email() -> str:
    return f"auth-{uuid.uuid4().hex[:12]}@test.local"


def test_sign_up_then_sign_in_with_the_password(auth_url: str, anon_key: str, client_ip: str) -> None:
    client = _client(auth_url, anon_key, client_ip)
    email = _email()

    signed_up = client.auth.sign_up({"email": email, "password": "correct horse 1"})
    assert signed_up.session is not None  # auto-confirm: a session at once
    assert signed_up.user is not None and signed_up.user.email == email
    assert signed_up.user.email_confirmed_at is not None

    signed_in = client.auth.sign_in_with_password({"email": email, "password": "correct horse 1"})

    assert signed_in.user is not None and signed_in.user.id == signed_up.user.id
    assert signed_in.session is not None
    assert signed_in.session.token_type == "bearer"
    assert signed_in.session.refresh_token != signed_up.session.refresh_token


def test_a_wrong_password_is_invalid_credentials(auth_url: str, anon_key: str, client_ip: str) -> None:
    client = _client(auth_url, anon_key, client_ip)
    email = _email()
    client.auth.sign_up({"email": email, "password": "correct horse 1"})

    with pytest.raises(AuthApiError) as caught:
        client.auth.sign_in_with_password({"email": email, "password": "wrong horse 1"})

    assert caught.value.status == 400
    assert caught.value.code == "invalid_credentials"
    assert caught.value.message == "Invalid login credentials"
