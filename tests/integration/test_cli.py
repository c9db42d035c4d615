"""The aitradex command line against the running local stack."""

from __future__ import annotations

import subprocess
import sys

import jwt

from lib.config import Settings
from lib.db.session import Caller, Database
from lib.services.auth import tokens


def _aitradex(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lib.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_env_prints_the_stack_keys_one_per_line(settings: Settings, test_env: dict[str, str]) -> None:
    result = _aitradex(test_env, "status", "-o", "env")

    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert set(values) >= {"DB_URL", "ANON_KEY", "SERVICE_ROLE_KEY", "JWT_SECRET"}
    assert values["DB_URL"].startswith("postgresql://authenticator:")
    assert values["DB_URL"].endswith("/aitradex_test")
    secret = values["JWT_SECRET"]
    assert tokens.verify(values["ANON_KEY"], secret)["role"] == "anon"
    assert tokens.verify(values["SERVICE_ROLE_KEY"], secret)["role"] == "service_role"


async def test_user_create_prints_a_token_for_a_real_user_on_its_last_line(
    settings: Settings, test_env: dict[str, str], db: Database
) -> None:
    email = f"cli-{jwt.utils.base64url_encode(__import__('os').urandom(6)).decode().lower()}@test.local"

    result = _aitradex(test_env, "user", "create", email)

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    claims = tokens.verify(token, settings.jwt_secret.reveal())
    assert claims["role"] == "authenticated"
    assert claims["email"] == email.lower()
    async with db.read(Caller.from_claims(claims)) as conn:
        row = await (await conn.execute("select auth.uid()::text as uid")).fetchone()
    assert row == {"uid": claims["sub"]}


def test_user_create_rejects_a_malformed_email_with_a_clear_error(test_env: dict[str, str]) -> None:
    result = _aitradex(test_env, "user", "create", "not-an-email")

    assert result.returncode == 1
    assert "not an email address" in result.stderr
    assert "Traceback" not in result.stderr


def test_backtest_prints_a_bucket_table_and_writes_the_same_rows_as_csv(
    test_env: dict[str, str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    csv_path = tmp_path / "unirail.csv"

    result = _aitradex(
        test_env, "backtest", "--algorithm", "unirail_core", "--step", "10", "--csv", str(csv_path)
    )

    assert result.returncode == 0, result.stderr
    assert "TP first" in result.stdout
    assert ">=80" in result.stdout
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("bucket,low,high,signals,tp_first,sl_first,neither")
    buckets = [r.split(",")[0] for r in rows[1:]]
    assert buckets[:10] == [f"{i * 10}-{i * 10 + 10}" for i in range(10)]
    signals_by_bucket = sum(int(r.split(",")[3]) for r in rows[1:11])
    total_row = next(r for r in rows if r.startswith("all,"))
    assert signals_by_bucket == int(total_row.split(",")[3]) > 0


def test_backtest_refuses_an_unknown_algorithm_with_a_usage_error(test_env: dict[str, str]) -> None:
    result = _aitradex(test_env, "backtest", "--algorithm", "moon_ai")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
