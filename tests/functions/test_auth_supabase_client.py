"""The official supabase-py client's auth calls against the local /auth/v1, unchanged.

Every test signs in from an address of its own (``client_ip``, believed from 127.0.0.1), so the
abuse counters, shared through the test database, never mix tests.
"""

from __future__ import annotations

import uuid

import pytest
from supabase_auth.errors import AuthApiError, AuthInvalidJwtError, AuthWeakPasswordError

from lib.config import Settings
from lib.local_state import read_services
from supabase import Client, ClientOptions, create_client

PASSWORD = "correct horse 1"


def _client(url: str, anon_key: str, ip: str) -> Client:
    options = ClientOptions(headers={"X-Forwarded-For": ip}, auto_refresh_token=False, persist_session=False)
    return create_client(url, anon_key, options)


def _email() -> str:
    return f"auth-{uuid.uuid4().hex[:12]}@test.local"


def test_sign_up_then_sign_in_with_the_password(auth_url: str, anon_key: str, client_ip: str) -> None:
    client = _client(auth_url, anon_key, client_ip)
    email = _email()

    signed_up = client.auth.sign_up({"email": email, "password": PASSWORD})
    assert signed_up.session is not None  # auto-confirm: a session at once
    assert signed_up.user is not None
    assert signed_up.user.email == email
    assert signed_up.user.email_confirmed_at is not None

    signed_in = client.auth.sign_in_with_password({"email": email, "password": PASSWORD})

    assert signed_in.user is not None
    assert signed_in.user.id == signed_up.user.id
    assert signed_in.user.last_sign_in_at is not None
    assert signed_in.session is not None
    assert signed_in.session.token_type == "bearer"
    assert signed_in.session.expires_in == 3600
    assert signed_in.session.refresh_token != signed_up.session.refresh_token


def test_refresh_get_user_password_change_and_sign_out(auth_url: str, anon_key: str, client_ip: str) -> None:
    client = _client(auth_url, anon_key, client_ip)
    email = _email()
    first = client.auth.sign_up({"email": email, "password": PASSWORD}).session
    assert first is not None

    refreshed = client.auth.refresh_session(first.refresh_token).session
    assert refreshed is not None
    assert refreshed.refresh_token != first.refresh_token  # rotated
    assert refreshed.access_token != first.access_token

    user = client.auth.get_user(refreshed.access_token)
    assert user is not None
    assert user.user.email == email

    updated = client.auth.update_user({"password": "a new password 2"})
    assert updated.user.email == email

    with pytest.raises(AuthApiError) as old:
        client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert old.value.code == "invalid_credentials"
    now = client.auth.sign_in_with_password({"email": email, "password": "a new password 2"}).session
    assert now is not None

    client.auth.sign_out()  # scope "global": every session of the user

    assert client.auth.get_session() is None
    for token in (refreshed.access_token, now.access_token):
        with pytest.raises(AuthApiError) as gone:
            client.auth.get_user(token)
        assert gone.value.status == 403
        assert gone.value.code == "session_not_found"
    with pytest.raises(AuthApiError) as refresh_gone:
        client.auth.refresh_session(now.refresh_token)
    assert refresh_gone.value.code == "refresh_token_not_found"


def test_a_wrong_password_is_invalid_credentials(auth_url: str, anon_key: str, client_ip: str) -> None:
    client = _client(auth_url, anon_key, client_ip)
    email = _email()
    client.auth.sign_up({"email": email, "password": PASSWORD})

    with pytest.raises(AuthApiError) as caught:
        client.auth.sign_in_with_password({"email": email, "password": "wrong horse 1"})

    assert caught.value.status == 400
    assert caught.value.code == "invalid_credentials"
    assert caught.value.message == "Invalid login credentials"


def test_reusing_a_revoked_refresh_token_revokes_the_whole_session(
    auth_url: str, anon_key: str, client_ip: str
) -> None:
    client = _client(auth_url, anon_key, client_ip)
    session = client.auth.sign_up({"email": _email(), "password": PASSWORD}).session
    assert session is not None
    r1 = session.refresh_token
    second = client.auth.refresh_session(r1).session
    assert second is not None
    # GoTrue's rule: the revoked parent of the live token gives that live token back (a lost answer).
    again = client.auth.refresh_session(r1).session
    assert again is not None
    assert again.refresh_token == second.refresh_token
    third = client.auth.refresh_session(second.refresh_token).session
    assert third is not None

    with pytest.raises(AuthApiError) as reused:
        client.auth.refresh_session(r1)  # no longer the live token's parent, past the interval (0 here)

    assert reused.value.status == 400
    assert reused.value.code == "refresh_token_already_used"
    with pytest.raises(AuthApiError) as revoked:
        client.auth.refresh_session(third.refresh_token)  # the live token died with its session
    assert revoked.value.code == "refresh_token_not_found"
    with pytest.raises(AuthApiError) as signed_out:
        client.auth.get_user(third.access_token)
    assert signed_out.value.code == "session_not_found"


def test_a_short_password_is_weak_and_an_email_signs_up_once(
    auth_url: str, anon_key: str, client_ip: str
) -> None:
    client = _client(auth_url, anon_key, client_ip)
    email = _email()

    with pytest.raises(AuthWeakPasswordError) as weak:
        client.auth.sign_up({"email": email, "password": "short"})
    assert weak.value.status == 422
    assert weak.value.reasons == ["length"]
    assert weak.value.message == "Password should be at least 8 characters."

    client.auth.sign_up({"email": email, "password": PASSWORD})
    with pytest.raises(AuthApiError) as taken:
        client.auth.sign_up({"email": email.upper(), "password": PASSWORD})
    assert taken.value.status == 422
    assert taken.value.code == "user_already_exists"


def test_sign_out_scopes_local_and_others(auth_url: str, anon_key: str, client_ip: str) -> None:
    email = _email()
    phone = _client(auth_url, anon_key, client_ip)
    laptop = _client(auth_url, anon_key, client_ip)
    tablet = _client(auth_url, anon_key, client_ip)
    phone.auth.sign_up({"email": email, "password": PASSWORD})
    laptop_session = laptop.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    tablet_session = tablet.auth.sign_in_with_password({"email": email, "password": PASSWORD}).session
    assert laptop_session is not None
    assert tablet_session is not None

    phone.auth.sign_out({"scope": "others"})

    assert phone.auth.get_user() is not None
    for gone in (laptop_session, tablet_session):
        with pytest.raises(AuthApiError, match="does not exist"):
            phone.auth.get_user(gone.access_token)

    phone.auth.sign_out({"scope": "local"})
    assert phone.auth.get_session() is None


def test_the_rate_limit_answers_429_per_email_and_per_address(
    auth_limited_url: str, anon_key: str, client_ip: str
) -> None:
    # The server allows 3 attempts per email and 5 per address a day.
    client = _client(auth_limited_url, anon_key, client_ip)
    email = _email()
    client.auth.sign_up({"email": email, "password": PASSWORD})
    for _ in range(2):
        with pytest.raises(AuthApiError):
            client.auth.sign_in_with_password({"email": email, "password": "wrong horse 1"})

    with pytest.raises(AuthApiError) as by_email:
        client.auth.sign_in_with_password({"email": email, "password": PASSWORD})  # right, but too many

    assert by_email.value.status == 429
    assert by_email.value.code == "over_request_rate_limit"
    client.auth.sign_up({"email": _email(), "password": PASSWORD})  # 5th from this address: allowed
    with pytest.raises(AuthApiError) as by_address:
        client.auth.sign_up({"email": _email(), "password": PASSWORD})
    assert by_address.value.status == 429
    assert by_address.value.code == "over_request_rate_limit"
    elsewhere = _client(auth_limited_url, anon_key, f"203.0.113.{uuid.uuid4().int % 254 + 1}")
    assert elsewhere.auth.sign_up({"email": _email(), "password": PASSWORD}).session is not None


def test_the_clients_own_get_claims_verifies_the_es256_token_with_the_published_jwks(
    auth_url: str, anon_key: str, client_ip: str
) -> None:
    client = _client(auth_url, anon_key, client_ip)
    session = client.auth.sign_up({"email": _email(), "password": PASSWORD}).session
    assert session is not None

    verified = client.auth.get_claims()

    assert verified is not None
    assert verified["headers"]["alg"] == "ES256"
    assert verified["claims"]["session_id"]
    assert verified["claims"]["role"] == "authenticated"
    head, body, _signature = session.access_token.split(".")
    tampered = f"{head}.{body}.{'A' * 86}"
    with pytest.raises(AuthInvalidJwtError):
        client.auth.get_claims(tampered)


def test_the_stack_the_rebuild_started_serves_auth_too(settings: Settings, anon_key: str) -> None:
    api_url = str(read_services(settings.state_dir, settings.database.db_name)["api_url"])
    client = create_client(api_url, anon_key, ClientOptions(auto_refresh_token=False, persist_session=False))

    response = client.auth.sign_up({"email": _email(), "password": PASSWORD})

    assert response.session is not None
    assert client.auth.get_user(response.session.access_token) is not None
