"""Operators' users who can sign in: `aitradex user create --password` and the demo users' service."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest

from lib.config import Settings
from lib.errors import InvalidRequest
from lib.services.auth.users import create_user_with_password
from supabase import ClientOptions, create_client


def _sign_in(auth_url: str, anon_key: str, ip: str, email: str, password: str) -> str:
    options = ClientOptions(headers={"X-Forwarded-For": ip}, auto_refresh_token=False, persist_session=False)
    client = create_client(auth_url, anon_key, options)
    response = client.auth.sign_in_with_password({"email": email, "password": password})
    assert response.user is not None
    return response.user.id


def _aitradex(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lib.cli", *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_user_create_with_password_reads_the_environment_and_the_user_signs_in(
    test_env: dict[str, str], auth_url: str, anon_key: str, client_ip: str
) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@test.local"

    result = _aitradex(
        test_env, "user", "create", email, "--password", AITRADEX_USER_PASSWORD="operator pass 1"
    )

    assert result.returncode == 0, result.stderr
    assert "operator pass 1" not in result.stdout
    user_id = result.stdout.split("id=")[1].split()[0]
    assert _sign_in(auth_url, anon_key, client_ip, email, "operator pass 1") == user_id


def test_user_create_with_password_and_no_terminal_or_variable_fails_before_creating(
    test_env: dict[str, str], owner_conn: psycopg.Connection
) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@test.local"
    env = {k: v for k, v in test_env.items() if k != "AITRADEX_USER_PASSWORD"}

    missing = _aitradex(env, "user", "create", email, "--password")
    short = _aitradex(env, "user", "create", email, "--password", AITRADEX_USER_PASSWORD="short")

    assert missing.returncode == 1
    assert "AITRADEX_USER_PASSWORD" in missing.stderr
    assert short.returncode == 1
    assert "at least 8 characters" in short.stderr
    assert owner_conn.execute("select 1 from auth.users where email = %s", (email,)).fetchone() is None


def test_demo_users_get_generated_passwords_they_sign_in_with(
    owner_conn: psycopg.Connection, settings: Settings, auth_url: str, anon_key: str, client_ip: str
) -> None:
    email = f"demo-{uuid.uuid4().hex[:10]}@test.local"

    made = create_user_with_password(owner_conn, email, settings.jwt_secret.reveal())
    other = create_user_with_password(owner_conn, f"demo-{uuid.uuid4().hex[:10]}@test.local", "x" * 40)

    assert len(made.password) >= 16
    assert made.password != other.password
    stored = owner_conn.execute("select encrypted_password from auth.users where id = %s", (made.user.id,))
    assert stored.fetchone()[0].startswith("$2b$")
    assert _sign_in(auth_url, anon_key, client_ip, email, made.password) == made.user.id
    with pytest.raises(InvalidRequest):
        create_user_with_password(owner_conn, email, "x" * 40, password="short")
