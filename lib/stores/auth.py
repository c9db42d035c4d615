"""GoTrue's tables (``auth.users``, ``auth.sessions``, ``auth.refresh_tokens``) and the abuse counters.

Every function takes an owner connection (:class:`lib.db.owner_pool.OwnerPool`): the local auth server
is GoTrue's stand-in and, like GoTrue with its own privileged role (``supabase_auth_admin``), writes
these tables outside row-level security. API roles have no grant on them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

OwnerAsyncConnection = psycopg.AsyncConnection[dict[str, Any]]

_USER_COLUMNS = sql.SQL(
    "id, coalesce(aud, 'authenticated') as aud, coalesce(role, 'authenticated') as role, email, "
    "encrypted_password, email_confirmed_at, phone, phone_confirmed_at, confirmed_at, last_sign_in_at, "
    "raw_app_meta_data, raw_user_meta_data, created_at, coalesce(updated_at, created_at) as updated_at, "
    "banned_until, is_anonymous, is_sso_user"
)


async def insert_user(
    conn: OwnerAsyncConnection, email: str, encrypted_password: str, user_meta: dict[str, Any]
) -> dict[str, Any] | None:
    """A new confirmed (auto-confirm) email user, or None when the email is taken."""
    cur = await conn.execute(
        sql.SQL(
            "insert into auth.users (aud, role, email, encrypted_password, email_confirmed_at, "
            "raw_app_meta_data, raw_user_meta_data, created_at, updated_at) "
            "values ('authenticated', 'authenticated', %s, %s, now(), %s, %s, now(), now()) "
            "on conflict (email) do nothing returning {}"
        ).format(_USER_COLUMNS),
        (email, encrypted_password, Jsonb({"provider": "email", "providers": ["email"]}), Jsonb(user_meta)),
    )
    return await cur.fetchone()


async def user_by_email(conn: OwnerAsyncConnection, email: str) -> dict[str, Any] | None:
    """The user with ``email`` (not deleted), or None."""
    cur = await conn.execute(
        sql.SQL("select {} from auth.users where email = %s and deleted_at is null").format(_USER_COLUMNS),
        (email,),
    )
    return await cur.fetchone()


async def user_by_id(conn: OwnerAsyncConnection, user_id: str) -> dict[str, Any] | None:
    """The user with ``user_id`` (not deleted), or None."""
    cur = await conn.execute(
        sql.SQL("select {} from auth.users where id = %s and deleted_at is null").format(_USER_COLUMNS),
        (user_id,),
    )
    return await cur.fetchone()


async def update_user(
    conn: OwnerAsyncConnection,
    user_id: str,
    *,
    encrypted_password: str | None = None,
    user_meta: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Set the password hash and/or merge ``user_meta`` into the metadata (as GoTrue merges ``data``)."""
    cur = await conn.execute(
        sql.SQL(
            "update auth.users set encrypted_password = coalesce(%s, encrypted_password), "
            "raw_user_meta_data = raw_user_meta_data || coalesce(%s, '{{}}'::jsonb), updated_at = now() "
            "where id = %s returning {}"
        ).format(_USER_COLUMNS),
        (encrypted_password, Jsonb(user_meta) if user_meta is not None else None, user_id),
    )
    return await cur.fetchone()


async def record_sign_in(conn: OwnerAsyncConnection, user_id: str) -> None:
    """Stamp ``last_sign_in_at``."""
    await conn.execute("update auth.users set last_sign_in_at = now() where id = %s", (user_id,))


async def create_session(
    conn: OwnerAsyncConnection, session_id: str, user_id: str, user_agent: str | None, ip: str | None
) -> None:
    """A new ``aal1`` session."""
    await conn.execute(
        "insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip) "
        "values (%s, %s, now(), now(), 'aal1', %s, %s)",
        (session_id, user_id, user_agent, ip),
    )


async def insert_refresh_token(
    conn: OwnerAsyncConnection, token: str, user_id: str, session_id: str, parent: str | None
) -> None:
    """A live refresh token of the session (``parent``: the one it replaces)."""
    await conn.execute(
        "insert into auth.refresh_tokens "
        "(token, user_id, revoked, created_at, updated_at, parent, session_id) "
        "values (%s, %s, false, now(), now(), %s, %s)",
        (token, user_id, parent, session_id),
    )


async def refresh_token_for_update(
    conn: OwnerAsyncConnection, token: str, reuse_interval_s: int
) -> dict[str, Any] | None:
    """The token's row (locked, with its session's) and whether it was revoked more than
    ``reuse_interval_s`` ago by the database's clock; None when the token or its session is gone."""
    cur = await conn.execute(
        "select t.id, t.token, t.user_id, t.revoked, t.session_id, "
        "(now() - t.updated_at > make_interval(secs => %s)) as past_reuse_interval "
        "from auth.refresh_tokens t join auth.sessions s on s.id = t.session_id "
        "where t.token = %s for update of t, s",
        (reuse_interval_s, token),
    )
    return await cur.fetchone()


async def active_refresh_token(conn: OwnerAsyncConnection, session_id: str) -> dict[str, Any] | None:
    """The session's newest live refresh token, or None."""
    cur = await conn.execute(
        "select token, parent from auth.refresh_tokens where session_id = %s and not revoked "
        "order by id desc limit 1",
        (session_id,),
    )
    return await cur.fetchone()


async def revoke_refresh_token(conn: OwnerAsyncConnection, token_id: int) -> None:
    """Mark one refresh token used (its ``updated_at`` starts the reuse interval)."""
    await conn.execute(
        "update auth.refresh_tokens set revoked = true, updated_at = now() where id = %s", (token_id,)
    )


async def touch_session(conn: OwnerAsyncConnection, session_id: str) -> None:
    """Stamp the session's last refresh."""
    await conn.execute(
        "update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now() where id = %s",
        (session_id,),
    )


async def session_alive(conn: OwnerAsyncConnection, session_id: str, user_id: str) -> bool:
    """Whether the user's session still exists."""
    cur = await conn.execute(
        "select 1 as alive from auth.sessions where id = %s and user_id = %s", (session_id, user_id)
    )
    return await cur.fetchone() is not None


async def delete_sessions(
    conn: OwnerAsyncConnection, user_id: str, *, only: str | None = None, keep: str | None = None
) -> int:
    """Delete the user's sessions (their refresh tokens go with them): ``only`` one, all but ``keep``,
    or all. Returns how many."""
    cur = await conn.execute(
        "delete from auth.sessions where user_id = %s "
        "and (%s::uuid is null or id = %s::uuid) and (%s::uuid is null or id <> %s::uuid)",
        (user_id, only, only, keep, keep),
    )
    return cur.rowcount


async def hit_rate_limit(conn: OwnerAsyncConnection, bucket: str, window_s: int) -> int:
    """Count one attempt in ``bucket`` and return the count of its current ``window_s`` window.

    One statement, so concurrent workers never lose a hit, and the database's clock cuts the windows,
    so workers on several hosts agree on them: a bucket still in an older window starts over at 1.
    """
    cur = await conn.execute(
        "with w as (select to_timestamp(floor(extract(epoch from now()) / %s) * %s) as start) "
        "insert into public.auth_rate_limits as r (bucket, window_start, hits) "
        "select %s, w.start, 1 from w "
        "on conflict (bucket) do update set "
        "hits = case when r.window_start = excluded.window_start then r.hits + 1 else 1 end, "
        "window_start = excluded.window_start "
        "returning hits",
        (window_s, window_s, bucket),
    )
    row = await cur.fetchone()
    assert row is not None  # an upsert always returns its row
    return int(row["hits"])


async def forget_old_windows(conn: OwnerAsyncConnection, window_s: int) -> None:
    """Delete counters whose window ended (they would start over at 1 anyway)."""
    await conn.execute(
        "delete from public.auth_rate_limits where window_start < now() - make_interval(secs => %s)",
        (window_s,),
    )
