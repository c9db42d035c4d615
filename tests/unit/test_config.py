"""Configuration is one validated object; a missing secret fails loudly."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from lib.config import Secret, load_settings, parse_master_keys
from lib.errors import ConfigError

KEY = base64.b64encode(b"k" * 32).decode()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {
        "AITRADEX_STATE_DIR": str(tmp_path),
        "JWT_SECRET": "j" * 40,
        "AITRADEX_MASTER_KEYS": f"1:{KEY}",
        "AITRADEX_AUTHENTICATOR_PASSWORD": "pw",
        "POSTGRES_SUPERUSER_PASSWORD": "su",
    }
    base.update(extra)
    return base


def test_complete_settings_load_and_hide_their_secrets(tmp_path: Path) -> None:
    settings = load_settings(_env(tmp_path))
    assert settings.database.embedded
    assert settings.current_key_version == 1
    assert "j" * 40 not in repr(settings)
    assert settings.jwt_secret.reveal() == "j" * 40


@pytest.mark.parametrize("missing", ["JWT_SECRET", "AITRADEX_MASTER_KEYS", "AITRADEX_AUTHENTICATOR_PASSWORD"])
def test_a_missing_secret_fails_loudly_naming_it(tmp_path: Path, missing: str) -> None:
    env = _env(tmp_path)
    env[missing] = ""
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_a_short_jwt_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings(_env(tmp_path, JWT_SECRET="short"))


def test_an_external_database_derives_the_authenticator_url(tmp_path: Path) -> None:
    settings = load_settings(_env(tmp_path, DATABASE_URL="postgresql://postgres:pw@db.example:5432/postgres"))
    assert not settings.database.embedded
    assert settings.database.external_app_url is not None
    assert (
        settings.database.external_app_url.reveal()
        == "postgresql://authenticator:pw@db.example:5432/postgres"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "has no key"),
        ("1", "must look like"),
        ("x:abc", "must look like"),
        ("1:%%%", "not valid base64"),
        (f"1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"1:{KEY},1:{KEY}", "twice"),
    ],
)
def test_malformed_master_keys_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_master_keys(raw)


def test_master_keys_parse_by_version() -> None:
    other = base64.b64encode(b"o" * 32).decode()
    assert parse_master_keys(f"1:{KEY}, 2:{other}") == {1: b"k" * 32, 2: b"o" * 32}


def test_an_empty_secret_cannot_exist() -> None:
    with pytest.raises(ConfigError):
        Secret("")


def test_by_default_no_proxy_is_trusted_and_requests_have_ten_seconds(tmp_path: Path) -> None:
    http = load_settings(_env(tmp_path)).http
    assert http.trusted_proxies == ()
    assert http.read_timeout_s == 10.0


def test_trusted_proxies_and_the_read_timeout_are_read_from_the_environment(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        AITRADEX_TRUSTED_PROXIES=" 10.0.0.5, 172.16.0.0/12,,::1 ",
        AITRADEX_HTTP_READ_TIMEOUT_S="2.5",
    )
    http = load_settings(env).http
    assert [str(n) for n in http.trusted_proxies] == ["10.0.0.5/32", "172.16.0.0/12", "::1/128"]
    assert http.read_timeout_s == 2.5


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "proxy.local", "10.0.0.300", "*"])
def test_a_malformed_trusted_proxy_fails_at_startup_naming_it(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match="AITRADEX_TRUSTED_PROXIES"):
        load_settings(_env(tmp_path, AITRADEX_TRUSTED_PROXIES=raw))


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "301", "soon"])
def test_a_read_timeout_out_of_bounds_fails_at_startup(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match="AITRADEX_HTTP_READ_TIMEOUT_S"):
        load_settings(_env(tmp_path, AITRADEX_HTTP_READ_TIMEOUT_S=raw))
