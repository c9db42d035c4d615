"""What Supabase Auth costs: token verification in process, and sign-up, sign-in and GET /user over HTTP.

A functions server is started in this process on the configured database (the demo's by default;
``AITRADEX_DB_NAME=aitradex_test`` for the tests' one), with the rate limits lifted so the loop is not
refused. Sign-in is dominated by bcrypt (cost 10), on purpose.

Run: .venv/bin/python bench/auth_latency.py [--tries 20]
It is a benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import statistics
import time
import uuid
from collections.abc import Callable

import httpx

from lib.config import load_settings
from lib.http.server import auth_wiring, create_functions_app, serve_in_thread
from lib.services.auth.signing import SigningKey
from lib.services.auth.tokens import mint_api_key, mint_user_token
from lib.services.auth.verify import TokenVerifier

# Any password will do; a fresh one each run.
PASSWORD = secrets.token_urlsafe(12)


async def verify_cost(verifier: TokenVerifier, token: str, n: int = 2000) -> float:
    """Microseconds per verification (the JWKS cache warm)."""
    await verifier.verify(token)
    started = time.perf_counter()
    for _ in range(n):
        await verifier.verify(token)
    return (time.perf_counter() - started) / n * 1e6


def timed(call: Callable[[], httpx.Response]) -> float:
    """Seconds one request took."""
    started = time.perf_counter()
    response = call()
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=20)
    args = parser.parse_args()
    settings = load_settings()
    settings = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, rate_limit_ip=10**6, rate_limit_email=10**6)
    )
    assert settings.auth.signing_key is not None, "run `make demo` once: it generates the signing key"
    verifier, _ = auth_wiring(settings)
    key = SigningKey.from_pem(settings.auth.signing_key.reveal())
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "role": "authenticated", "iat": now, "exp": now + 600}
    for name, token in (
        ("HS256", mint_user_token(claims["sub"], "a@b.cd", settings.jwt_secret.reveal())),
        ("ES256", key.sign(claims)),
    ):
        print(f"verify {name}: {asyncio.run(verify_cost(verifier, token)):.0f} us per token")

    anon = mint_api_key("anon", settings.jwt_secret.reveal())
    with serve_in_thread(create_functions_app(settings)) as url:
        client = httpx.Client(base_url=url + "/auth/v1", headers={"apikey": anon}, timeout=30)
        email = f"bench-{uuid.uuid4().hex[:8]}@bench.local"
        sign_up = timed(lambda: client.post("/signup", json={"email": email, "password": PASSWORD}))
        body = {"email": email, "password": PASSWORD}
        sign_ins = [
            timed(lambda: client.post("/token?grant_type=password", json=body)) for _ in range(args.tries)
        ]
        token = client.post("/token?grant_type=password", json=body).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        users = [timed(lambda: client.get("/user", headers=auth)) for _ in range(args.tries * 2)]
    print(
        f"sign-up {sign_up * 1000:.0f} ms; sign-in p50 {statistics.median(sign_ins) * 1000:.0f} ms "
        f"({args.tries} tries); GET /user p50 {statistics.median(users) * 1000:.1f} ms ({args.tries * 2})"
    )


if __name__ == "__main__":
    main()
