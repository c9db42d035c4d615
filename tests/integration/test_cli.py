"""The aitradex command line against the running local stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jwt
import psycopg
import pytest

from lib.config import Settings
from lib.db.session import Caller, Database
from lib.errors import InvalidRequest
from lib.services.auth import tokens
from lib.services.auth.users import create_local_user


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


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--data", "{empty}"), "no candle files"),
        (("--timeframe", "D"), "not enough data: no signal could be scored and labelled"),
    ],
    ids=["empty-data-folder", "daily-bars"],
)
def test_a_backtest_with_nothing_to_report_says_why_and_exits_1(
    test_env: dict[str, str], tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    args = tuple(a.replace("{empty}", str(tmp_path)) for a in args)

    result = _aitradex(test_env, "backtest", "--algorithm", "unirail_core", *args)

    assert result.returncode == 1, result.stdout
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert reason in result.stderr
    assert "TP first" not in result.stdout  # no all-zero table


@pytest.mark.parametrize("hours", ["-1", "0", "nan", "inf", "169"])
def test_user_create_refuses_a_token_lifetime_that_is_expired_or_endless(
    test_env: dict[str, str], hours: str
) -> None:
    result = _aitradex(test_env, "user", "create", "ttl@test.local", "--ttl-hours", hours)

    assert result.returncode == 2
    assert "--ttl-hours" in result.stderr
    assert "Traceback" not in result.stderr
    assert "eyJ" not in result.stdout  # no token was printed


@pytest.mark.parametrize("ttl_s", [-3600, 0, 7 * 24 * 3600 + 1])
def test_a_local_user_token_must_live_between_now_and_a_week(
    owner_conn: psycopg.Connection, settings: Settings, ttl_s: int
) -> None:
    with pytest.raises(InvalidRequest, match="token lifetime must be above 0 and at most 168 hours"):
        create_local_user(owner_conn, "ttl@test.local", settings.jwt_secret.reveal(), ttl_s=ttl_s)


@pytest.mark.parametrize("balance", ["1e999999", "0", "-5", "NaN", "1000000000000.5"])
def test_paper_account_create_refuses_a_balance_out_of_bounds(test_env: dict[str, str], balance: str) -> None:
    result = _aitradex(test_env, "paper-account", "create", "--balance", balance)

    assert result.returncode == 2
    assert "balance must be a plain decimal above 0 and at most 1,000,000,000,000 USDT" in result.stderr
    assert "Traceback" not in result.stderr
