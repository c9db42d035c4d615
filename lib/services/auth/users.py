"""Local users: a row in ``auth.users`` plus an ``authenticated`` token, like a local Supabase sign-up.

Writing ``auth.users`` is the auth server's job, not an API role's, so this runs on an operations
connection (the database owner), exactly as GoTrue does with its own privileged role.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from lib.db.target import OwnerConnection
from lib.errors import InvalidRequest
from lib.services.auth.passwords import MAX_PASSWORD_BYTES, hash_password
from lib.services.auth.tokens import USER_TOKEN_TTL_S, mint_user_token
from lib.stores import users as users_store

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: The longest a local user's token may live: a week, the most Supabase's auth server allows.
MAX_TOKEN_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class LocalUser:
    """A user and a fresh access token."""

    id: str
    email: str
    token: str
    created: bool


def create_local_user(
    admin: OwnerConnection, email: str, jwt_secret: str, *, ttl_s: int = USER_TOKEN_TTL_S
) -> LocalUser:
    """Create the user (or find it by email) and mint a token for it, valid for ``ttl_s`` seconds.

    Raises InvalidRequest for a lifetime that is not above 0 and at most :data:`MAX_TOKEN_TTL_S`
    (a token that is expired when issued, or one that never practically expires).
    """
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 0 < ttl_s <= MAX_TOKEN_TTL_S:
        raise InvalidRequest(
            f"the token lifetime must be above 0 and at most {MAX_TOKEN_TTL_S // 3600} hours",
            details={"ttl_s": str(ttl_s)[:40]},
        )
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest(f"not an email address: {email!r}")
    user_id, created = users_store.create_or_find(admin, email)
    return LocalUser(
        id=user_id,
        email=email,
        token=mint_user_token(user_id, email, jwt_secret, ttl_s=ttl_s),
        created=created,
    )


@dataclass(frozen=True, slots=True)
class UserWithPassword:
    """A user who can sign in at ``/auth/v1`` with ``password``."""

    user: LocalUser
    password: str


def validate_new_password(password: str, *, min_length: int) -> None:
    """Raise InvalidRequest for a password shorter than ``min_length`` or over bcrypt's 72 bytes."""
    if len(password) < min_length or len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise InvalidRequest(
            f"the password must have at least {min_length} characters and at most {MAX_PASSWORD_BYTES} bytes"
        )


def set_user_password(admin: OwnerConnection, user_id: str, password: str, *, min_length: int) -> None:
    """Give the user ``password`` (bcrypt, in ``auth.users.encrypted_password``); see
    :func:`validate_new_password` for what is refused."""
    validate_new_password(password, min_length=min_length)
    users_store.set_password(admin, user_id, hash_password(password))


def create_user_with_password(
    admin: OwnerConnection,
    email: str,
    jwt_secret: str,
    *,
    password: str | None = None,
    min_length: int = 8,
) -> UserWithPassword:
    """Create (or find) the user and set its password: ``password``, or a generated one (for demo users).

    A generated password has 96 random bits in 16 URL-safe characters.
    """
    chosen = password if password is not None else secrets.token_urlsafe(12)
    validate_new_password(chosen, min_length=min_length)
    user = create_local_user(admin, email, jwt_secret)
    set_user_password(admin, user.id, chosen, min_length=min_length)
    return UserWithPassword(user=user, password=chosen)
