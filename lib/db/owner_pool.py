"""A small pool of owner connections for the local auth server (GoTrue's stand-in).

GoTrue writes ``auth.users``, ``auth.sessions`` and ``auth.refresh_tokens`` as its own privileged role;
here that is the database owner, the same connection ``aitradex user create`` uses. Nothing else in the
functions server gets one: every API request still runs as its caller through :mod:`lib.db.session`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from lib.db.unreachable import CONNECT_TIMEOUT_S, unreachable

OwnerAsyncConnection = psycopg.AsyncConnection[dict[str, Any]]


class OwnerPool:
    """Owner connections; each unit of work is one transaction (:meth:`transaction`)."""

    def __init__(self, admin_url: str, *, max_size: int = 4, timeout_s: float = 10.0) -> None:
        self._url = admin_url
        self._pool: AsyncConnectionPool[OwnerAsyncConnection] = AsyncConnectionPool(
            admin_url,
            min_size=1,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False, "connect_timeout": CONNECT_TIMEOUT_S},
            name="aitradex-auth",
        )

    async def open(self) -> None:
        """Connect; one ``DatabaseUnavailable`` sentence when the database does not answer."""
        try:
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        except PoolTimeout:
            await self._pool.close()
            raise unreachable(self._url) from None

    async def close(self) -> None:
        """Release the connections."""
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[OwnerAsyncConnection]:
        """One connection inside one transaction, committed when the block ends without an error."""
        async with self._pool.connection() as conn, conn.transaction():
            yield conn
