"""Database access where every query runs as its caller, the way PostgREST does it.

The application connects as ``authenticator`` (never a superuser or table owner) through one
connection pool. Each unit of work is one transaction that, before any query:

1. begins (``READ ONLY`` for reads);
2. sets ``role`` to the caller's role, ``request.jwt.claims`` to its verified claims and
   ``request.headers`` (for the audit trail), all transaction-local (``set_config(..., true)``);
3. sets the role's own ``statement_timeout`` (``alter role ... set statement_timeout``), as PostgREST does.

So row-level security is always in force, and nothing leaks between requests sharing a connection.

Driver: psycopg 3 with ``psycopg_pool``, chosen by measurement (``bench/db_driver.py``, this 2-core
machine, 4,000 role-scoped read requests, concurrency 16, pool 8): psycopg 1,110 req/s (p50 14.3 ms,
p95 20.4 ms); asyncpg 1,490 req/s (p50 10.0 ms, p95 19.9 ms); psycopg's pipeline mode 919 req/s. So
asyncpg is 1.34x faster at the driver level, about 0.2 ms of CPU per request, with the same tail
latency. psycopg is kept because one driver then serves both the synchronous operations code
(migrations, rebuild, CLI) and this async path with the same SQL and parameter style, the same
``Jsonb`` adapters and typed error classes mapped once below; and because per-request cost is dominated
by HTTP, JSON and JWT work above this layer (``bench/functions_latency.py`` shows the end-to-end figure).
If the database layer ever becomes the bottleneck, this module is the only one to change.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from lib.db.unreachable import CONNECT_TIMEOUT_S, unreachable
from lib.errors import (
    AitradexError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
)

Role = Literal["anon", "authenticated", "service_role"]
ROLES: frozenset[str] = frozenset({"anon", "authenticated", "service_role"})
Connection = psycopg.AsyncConnection[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a unit of work runs as: a database role, the verified JWT claims, and request headers."""

    role: Role
    claims: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def user_id(self) -> str | None:
        """The ``sub`` claim of an authenticated caller."""
        sub = self.claims.get("sub")
        return str(sub) if sub and self.role == "authenticated" else None

    @classmethod
    def anon(cls) -> Caller:
        return cls(role="anon", claims={"role": "anon"})

    @classmethod
    def service(cls) -> Caller:
        return cls(role="service_role", claims={"role": "service_role"})

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Caller:
        """A caller from verified JWT claims. Raises Forbidden for a role the API does not serve."""
        role = claims.get("role")
        if role not in ROLES:
            raise Forbidden("the token's role may not use the API")
        if role == "authenticated" and not claims.get("sub"):
            raise Forbidden("an authenticated token must name its user (sub)")
        return cls(role=role, claims=dict(claims), headers=dict(headers or {}))


def _map_error(exc: psycopg.Error) -> AitradexError:
    """Translate a database error into the application's hierarchy (no SQL text in messages)."""
    diag = exc.diag
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return Forbidden("not allowed", details={"reason": diag.message_primary or "permission denied"})
    if isinstance(exc, pg_errors.UniqueViolation):
        return Conflict("already exists", details={"constraint": diag.constraint_name})
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return NotFound("a referenced record does not exist", details={"constraint": diag.constraint_name})
    if isinstance(exc, pg_errors.CheckViolation | pg_errors.NotNullViolation | pg_errors.DataError):
        return InvalidRequest(
            "value out of range or missing",
            details={"constraint": diag.constraint_name, "column": diag.column_name},
        )
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return DatabaseError("a write was attempted in a read-only request")
    if isinstance(exc, pg_errors.QueryCanceled):
        return DatabaseError("the query took longer than the role's statement timeout")
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseUnavailable("the database cannot be reached")
    return DatabaseError("the database refused the operation", details={"sqlstate": diag.sqlstate})


class Database:
    """A pool of ``authenticator`` connections. Construct it freely: it connects in :meth:`open`.

    ``prepared_statements=False`` is for a transaction-mode pooler (Supavisor's port 6543): psycopg's
    ``prepare_threshold=None``. Every connection attempt gives up after ``CONNECT_TIMEOUT_S``, and
    :meth:`open` fails at once (one ``DatabaseUnavailable`` sentence) when the database refuses the
    first connection, instead of letting the pool retry for ``open_timeout_s``.
    """

    def __init__(
        self,
        app_url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout_s: float = 10.0,
        open_timeout_s: float = 10.0,
        prepared_statements: bool = True,
    ) -> None:
        self._url = app_url
        self._open_timeout_s = open_timeout_s
        kwargs: dict[str, Any] = {
            "row_factory": dict_row,
            "autocommit": False,
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
        if not prepared_statements:
            # Behind a transaction-mode pooler each transaction may get another server connection, where
            # a statement psycopg prepared earlier does not exist: never prepare (psycopg's own switch).
            kwargs["prepare_threshold"] = None
        self._pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            app_url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            kwargs=kwargs,
            name="aitradex",
        )
        self._timeouts: dict[str, str] = {}

    async def open(self) -> None:
        """Connect the pool and read each API role's ``statement_timeout``."""
        try:
            # One direct attempt first: a refused or failed login is reported now, in one sentence.
            probe = await psycopg.AsyncConnection.connect(self._url, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise unreachable(self._url, exc) from None
        await probe.close()
        try:
            await self._pool.open(wait=True, timeout=self._open_timeout_s)
        except PoolTimeout:
            await self._pool.close()
            raise unreachable(self._url) from None
        async with self._pool.connection() as conn:
            rows = await conn.execute(
                "select rolname, coalesce((select split_part(c, '=', 2) from unnest(rolconfig) c "
                "where c like 'statement_timeout=%%'), '0') as timeout "
                "from pg_roles where rolname = any(%s)",
                (sorted(ROLES),),
            )
            self._timeouts = {row["rolname"]: row["timeout"] for row in await rows.fetchall()}
            await conn.rollback()
        missing = ROLES - self._timeouts.keys()
        if missing:
            raise DatabaseError(f"roles missing in the database: {sorted(missing)}; run the rebuild")

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self, caller: Caller, *, read_only: bool) -> AsyncIterator[Connection]:
        """One transaction running as ``caller``. Commits on success, rolls back on any error."""
        try:
            async with self._pool.connection() as conn:
                await conn.set_read_only(read_only)
                async with conn.transaction():
                    await conn.execute(
                        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true), "
                        "set_config('request.headers', %s, true), set_config('statement_timeout', %s, true)",
                        (
                            caller.role,
                            json.dumps(dict(caller.claims)),
                            json.dumps({k.lower(): v for k, v in caller.headers.items()}),
                            self._timeouts.get(caller.role, "0"),
                        ),
                    )
                    yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable("no database connection became free in time") from exc
        except psycopg.Error as exc:
            raise _map_error(exc) from exc

    def read(self, caller: Caller) -> AbstractAsyncContextManager[Connection]:
        """A READ ONLY transaction as ``caller`` (an async context manager yielding the connection)."""
        return self.transaction(caller, read_only=True)

    def write(self, caller: Caller) -> AbstractAsyncContextManager[Connection]:
        """A read-write transaction as ``caller``."""
        return self.transaction(caller, read_only=False)
