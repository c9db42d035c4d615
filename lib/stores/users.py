"""``auth.users``: the auth server's table, written only on an operator's (owner) connection, as GoTrue
does with its own privileged role."""

from __future__ import annotations

from typing import Any

import psycopg

_APP_META = '{"provider": "email", "providers": ["email"]}'


def create_or_find(admin: psycopg.Connection[Any], email: str) -> tuple[str, bool]:
    """The user's id, creating the row if no user has ``email`` yet; and whether it was created."""
    with admin.transaction():
        # Confirmed at once, as the local auth server's sign-up (auto-confirm).
        row = admin.execute(
            "insert into auth.users (aud, role, email, email_confirmed_at, raw_app_meta_data, created_at, "
            "updated_at) values ('authenticated', 'authenticated', %s, now(), %s, now(), now()) "
            "on conflict (email) do nothing returning id",
            (email, _APP_META),
        ).fetchone()
        created = row is not None
        if row is None:
            row = admin.execute("select id from auth.users where email = %s", (email,)).fetchone()
    if row is None:
        raise LookupError(f"auth.users has no row for {email!r} right after the insert")
    return str(row[0]), created


def set_password(admin: psycopg.Connection[Any], user_id: str, encrypted_password: str) -> None:
    """Store the user's bcrypt hash in ``encrypted_password``, where GoTrue keeps it."""
    with admin.transaction():
        admin.execute(
            "update auth.users set encrypted_password = %s, updated_at = now() where id = %s",
            (encrypted_password, user_id),
        )
