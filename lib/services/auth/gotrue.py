"""The local auth server: GoTrue's sign-up, password and refresh-token grants, user and logout.

Shapes, codes and rules follow supabase/auth (GoTrue), so supabase-py and supabase-js work unchanged:

- Sign-up auto-confirms (no mail is sent locally) and answers with a session, as GoTrue does with
  ``MAILER_AUTOCONFIRM``; an email already registered is 422 ``user_already_exists``.
- Sign-ins and sign-ups are counted per client address and per email in Postgres
  (``public.auth_rate_limits``, one upsert each), so several workers share the limits; over either
  limit is 429 ``over_request_rate_limit``, before any password is checked.
- A wrong email and a wrong password give the same 400 ``invalid_credentials``, after the same work:
  one user lookup and one bcrypt check (against a dummy hash when nobody has the email).
- Refresh tokens rotate on every use. A revoked token that is the parent of the session's live token
  gets that live token back (the client lost the answer, GoTrue's rule); another revoked token is
  accepted within ``refresh_token_reuse_interval_s`` of its revocation (GoTrue's
  ``REFRESH_TOKEN_REUSE_INTERVAL``, Supabase's default 10 s); after that, it is an attack as far as
  anyone can tell: the whole session is revoked and the answer is 400 ``refresh_token_already_used``.
  GoTrue revokes the session's refresh tokens and keeps the row; this server deletes the session, so
  its access tokens are refused by ``GET /user`` at once too.
- ``GET``/``PUT /user`` and ``POST /logout`` check the token's session (403 ``session_not_found`` once
  signed out). A password change signs the user's other sessions out, as GoTrue's does.

It writes GoTrue's tables on an owner connection (:mod:`lib.db.owner_pool`) because it *is* the auth
server: GoTrue does the same with its own privileged role, and API roles hold no grant on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lib.config import AuthConfig
from lib.db.owner_pool import OwnerPool
from lib.errors import Unauthorized
from lib.services.auth import errors
from lib.services.auth.errors import AuthApiError
from lib.services.auth.passwords import MAX_PASSWORD_BYTES, check_password, hash_password
from lib.services.auth.signing import SigningKey, access_token_claims, new_refresh_token
from lib.services.auth.verify import TokenVerifier
from lib.stores import auth as store

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_CHARS = 255
LOGOUT_SCOPES = ("global", "local", "others")
# One attempt in this many also deletes the counters of finished windows.
_CLEANUP_ONE_IN = 100


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is asking: the address the adapter vouches for, and the user agent."""

    ip: str | None
    user_agent: str | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def user_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A user as GoTrue's ``models.User`` serialises it (with its email identity)."""
    user_id = str(row["id"])
    created = _iso(row["created_at"])
    identity = {
        "identity_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"email-identity:{user_id}")),
        "id": user_id,
        "user_id": user_id,
        "identity_data": {
            "sub": user_id,
            "email": row["email"],
            "email_verified": row["email_confirmed_at"] is not None,
            "phone_verified": False,
        },
        "provider": "email",
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "created_at": created,
        "updated_at": _iso(row["updated_at"]),
        "email": row["email"],
    }
    return {
        "id": user_id,
        "aud": row["aud"],
        "role": row["role"],
        "email": row["email"] or "",
        "email_confirmed_at": _iso(row["email_confirmed_at"]),
        "phone": row["phone"] or "",
        "confirmed_at": _iso(row["confirmed_at"]),
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "app_metadata": row["raw_app_meta_data"] or {},
        "user_metadata": row["raw_user_meta_data"] or {},
        "identities": [identity] if row["email"] else [],
        "created_at": created,
        "updated_at": _iso(row["updated_at"]),
        "is_anonymous": bool(row["is_anonymous"]),
    }


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    return value if isinstance(value, str) else ""


def _email(body: Mapping[str, Any]) -> str:
    return _text(body, "email").strip().lower()


def _metadata(body: Mapping[str, Any]) -> dict[str, Any] | None:
    data = body.get("data")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise errors.validation_failed("data must be a JSON object")
    return data


class AuthServer:
    """GoTrue's endpoints over GoTrue's tables."""

    def __init__(self, pool: OwnerPool, key: SigningKey, config: AuthConfig, verifier: TokenVerifier) -> None:
        self._pool = pool
        self._key = key
        self._config = config
        self._verifier = verifier

    def jwks(self) -> dict[str, Any]:
        """The public key set tokens verify with."""
        return self._key.jwks()

    def settings(self) -> dict[str, Any]:
        """``GET /settings``: what this server offers (email and password only, auto-confirmed)."""
        external = {
            name: False for name in ("anonymous_users", "apple", "azure", "github", "google", "phone")
        }
        return {
            "external": {**external, "email": True},
            "disable_signup": False,
            "mailer_autoconfirm": True,
            "phone_autoconfirm": False,
            "sms_provider": "",
            "saml_enabled": False,
        }

    # --- abuse limits -----------------------------------------------------------------------------

    async def _count_attempt(self, client: ClientInfo, email: str) -> None:
        window = self._config.rate_window_s
        digest = hashlib.sha256(email.encode("utf-8")).hexdigest()
        async with self._pool.transaction() as conn:
            by_ip = await store.hit_rate_limit(conn, f"ip:{client.ip or '-'}", window)
            by_email = await store.hit_rate_limit(conn, f"email:{digest}", window)
            if secrets.randbelow(_CLEANUP_ONE_IN) == 0:
                await store.forget_old_windows(conn, window)
        if by_ip > self._config.rate_limit_ip or by_email > self._config.rate_limit_email:
            raise errors.rate_limited()

    def _check_new_password(self, password: str) -> None:
        if len(password) < self._config.min_password_length:
            raise errors.weak_password(self._config.min_password_length)
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            raise errors.validation_failed(f"Password cannot be longer than {MAX_PASSWORD_BYTES} characters")

    # --- sessions ---------------------------------------------------------------------------------

    async def _new_session(
        self, conn: store.OwnerAsyncConnection, user: Mapping[str, Any], client: ClientInfo, issuer: str
    ) -> dict[str, Any]:
        session_id = str(uuid.uuid4())
        user_id = str(user["id"])
        await store.create_session(conn, session_id, user_id, client.user_agent, client.ip)
        refresh = new_refresh_token()
        await store.insert_refresh_token(conn, refresh, user_id, session_id, None)
        await store.record_sign_in(conn, user_id)
        fresh = await store.user_by_id(conn, user_id)
        return self._session_json(fresh or user, session_id, refresh, issuer)

    def _session_json(
        self, user_row: Mapping[str, Any], session_id: str, refresh: str, issuer: str
    ) -> dict[str, Any]:
        user = user_json(user_row)
        claims = access_token_claims(
            issuer=issuer, user=user, session_id=session_id, ttl_s=self._config.access_token_ttl_s
        )
        return {
            "access_token": self._key.sign(claims),
            "token_type": "bearer",
            "expires_in": self._config.access_token_ttl_s,
            "expires_at": claims["exp"],
            "refresh_token": refresh,
            "user": user,
        }

    # --- endpoints --------------------------------------------------------------------------------

    async def signup(self, body: Mapping[str, Any], client: ClientInfo, issuer: str) -> dict[str, Any]:
        """``POST /signup``: a confirmed user and its first session."""
        email = _email(body)
        password = _text(body, "password")
        if not email:
            raise errors.validation_failed("To signup, please provide your email")
        if len(email) > MAX_EMAIL_CHARS or not EMAIL.match(email):
            raise AuthApiError(
                400, "email_address_invalid", "Unable to validate email address: invalid format"
            )
        if not password:
            raise errors.validation_failed("Signup requires a valid password")
        await self._count_attempt(client, email)
        self._check_new_password(password)
        metadata = _metadata(body) or {}
        hashed = await asyncio.to_thread(hash_password, password)
        async with self._pool.transaction() as conn:
            user = await store.insert_user(conn, email, hashed, metadata)
            if user is None:
                raise AuthApiError(422, "user_already_exists", "User already registered")
            return await self._new_session(conn, user, client, issuer)

    async def password_grant(
        self, body: Mapping[str, Any], client: ClientInfo, issuer: str
    ) -> dict[str, Any]:
        """``POST /token?grant_type=password``."""
        email = _email(body)
        password = _text(body, "password")
        if not email or not password:
            raise errors.invalid_credentials()
        await self._count_attempt(client, email)
        async with self._pool.transaction() as conn:
            user = await store.user_by_email(conn, email)
        hashed = user["encrypted_password"] if user is not None else None
        # Runs bcrypt either way: a missing user costs what a wrong password does.
        if not await asyncio.to_thread(check_password, password, hashed) or user is None:
            raise errors.invalid_credentials()
        if user["banned_until"] is not None and user["banned_until"] > datetime.now(
            user["banned_until"].tzinfo
        ):
            raise AuthApiError(400, "user_banned", "User is banned")
        async with self._pool.transaction() as conn:
            return await self._new_session(conn, user, client, issuer)

    async def refresh_grant(self, body: Mapping[str, Any], issuer: str) -> dict[str, Any]:
        """``POST /token?grant_type=refresh_token``: rotate the token (see the module's rules)."""
        token = _text(body, "refresh_token")
        if not token or len(token) > 255:
            raise errors.validation_failed("refresh_token required")
        reused = False
        async with self._pool.transaction() as conn:
            row = await store.refresh_token_for_update(
                conn, token, self._config.refresh_token_reuse_interval_s
            )
            user = await store.user_by_id(conn, row["user_id"]) if row is not None else None
            if row is None or user is None:
                raise AuthApiError(
                    400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
                )
            session_id = str(row["session_id"])
            issued: str | None = None
            if row["revoked"]:
                active = await store.active_refresh_token(conn, session_id)
                if active is not None and active["parent"] == token:
                    issued = active["token"]  # the client lost the last answer: give it again
                elif row["past_reuse_interval"]:
                    await store.delete_sessions(conn, str(user["id"]), only=session_id)
                    reused = True
            if not reused:
                if issued is None:
                    await store.revoke_refresh_token(conn, row["id"])
                    issued = new_refresh_token()
                    await store.insert_refresh_token(conn, issued, str(user["id"]), session_id, token)
                await store.touch_session(conn, session_id)
                return self._session_json(user, session_id, issued, issuer)
        # Outside the transaction: the session's revocation is committed before the refusal.
        raise AuthApiError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")

    async def _authenticated(self, token: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The token's claims and its user, with the session still alive."""
        if token is None:
            raise errors.no_authorization()
        try:
            claims = await self._verifier.verify(token)
        except Unauthorized:
            raise errors.bad_jwt() from None
        if claims.get("role") != "authenticated" or not claims.get("sub"):
            raise errors.bad_jwt()
        async with self._pool.transaction() as conn:
            session_id = claims.get("session_id")
            if session_id is not None and (
                not isinstance(session_id, str)
                or not await store.session_alive(conn, _uuid_or_nil(session_id), claims["sub"])
            ):
                raise errors.session_not_found()
            user = await store.user_by_id(conn, claims["sub"])
        if user is None:
            raise AuthApiError(403, "user_not_found", "User from sub claim in JWT does not exist")
        return claims, user

    async def get_user(self, token: str | None) -> dict[str, Any]:
        """``GET /user``."""
        _claims, user = await self._authenticated(token)
        return user_json(user)

    async def update_user(self, token: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /user``: a new password and/or metadata (email and phone changes need mail: refused)."""
        claims, user = await self._authenticated(token)
        if body.get("email") not in (None, user["email"]) or body.get("phone") not in (None, ""):
            raise errors.validation_failed(
                "Changing the email or phone is not offered by the local auth server"
            )
        metadata = _metadata(body)
        password = body.get("password")
        hashed: str | None = None
        if password is not None:
            if not isinstance(password, str):
                raise errors.validation_failed("password must be a string")
            self._check_new_password(password)
            if await asyncio.to_thread(check_password, password, user["encrypted_password"]):
                raise AuthApiError(
                    422, "same_password", "New password should be different from the old password."
                )
            hashed = await asyncio.to_thread(hash_password, password)
        async with self._pool.transaction() as conn:
            updated = await store.update_user(
                conn, str(user["id"]), encrypted_password=hashed, user_meta=metadata
            )
            if hashed is not None:
                session_id = claims.get("session_id")
                await store.delete_sessions(conn, str(user["id"]), keep=session_id if session_id else None)
        return user_json(updated or user)

    async def logout(self, token: str | None, scope: str) -> None:
        """``POST /logout?scope=global|local|others``: delete the sessions the scope names."""
        if scope not in LOGOUT_SCOPES:
            raise errors.validation_failed(f"Unsupported logout scope {scope[:20]!r}")
        claims, user = await self._authenticated(token)
        session_id = claims.get("session_id")
        user_id = str(user["id"])
        async with self._pool.transaction() as conn:
            if scope == "global" or not session_id:
                await store.delete_sessions(conn, user_id)
            elif scope == "local":
                await store.delete_sessions(conn, user_id, only=session_id)
            else:
                await store.delete_sessions(conn, user_id, keep=session_id)


def _uuid_or_nil(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(uuid.UUID(int=0))
