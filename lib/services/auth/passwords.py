"""Passwords as GoTrue keeps them: bcrypt hashes (``$2a$``/``$2b$``, cost 10) in ``encrypted_password``.

A sign-in for an email nobody has still runs one bcrypt check, against :data:`DUMMY_HASH`, so a wrong
email and a wrong password cost the same time and cannot be told apart by a stopwatch.
"""

from __future__ import annotations

import bcrypt

# GoTrue's bcrypt cost (golang.org/x/crypto/bcrypt.DefaultCost).
COST = 10
# bcrypt reads only the first 72 bytes; GoTrue refuses longer passwords rather than ignore the rest.
MAX_PASSWORD_BYTES = 72
DUMMY_HASH = bcrypt.hashpw(b"not-anyones-password", bcrypt.gensalt(COST)).decode("ascii")


def hash_password(password: str) -> str:
    """A bcrypt hash of ``password``."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(COST)).decode("ascii")


def check_password(password: str, hashed: str | None) -> bool:
    """Whether ``password`` matches ``hashed``; with no hash, the same work against a dummy, then False."""
    candidate = password.encode("utf-8")[:MAX_PASSWORD_BYTES]
    if not hashed:
        bcrypt.checkpw(candidate, DUMMY_HASH.encode("ascii"))
        return False
    try:
        return bcrypt.checkpw(candidate, hashed.encode("ascii"))
    except ValueError:  # not a bcrypt hash (a row written by something else): no password matches
        bcrypt.checkpw(candidate, DUMMY_HASH.encode("ascii"))
        return False
