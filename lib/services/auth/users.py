"""Local users: a row in ``auth.users`` plus an ``authenticated`` token, like a local Supabase sign-up.

Writing ``auth.users`` is the auth server's job, not an API role's, so this runs on an operations
connection (the database owner), exactly as GoTrue does with its own privileged role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lib.db.target import OwnerConnection
from lib.errors import InvalidRequest
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
