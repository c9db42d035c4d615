"""One sentence for a database that cannot be reached, and the timeout that makes it quick to say.

libpq waits for a TCP connection as long as the operating system lets it (minutes for an address that
drops packets), and its error text spans several lines with the connection string's host spelled in
quotes. Every connection this project opens passes :data:`CONNECT_TIMEOUT_S`, and every failure to
connect becomes :func:`unreachable`: ``the database cannot be reached (127.0.0.1:54329): Connection
refused``. No password, no user name, one line.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from lib.errors import DatabaseUnavailable

#: Seconds libpq may spend connecting (per attempt) before it gives up.
CONNECT_TIMEOUT_S = 5


def where(url: str) -> str:
    """``host:port`` (or ``host``) of a connection URL, without user or password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:  # a URL libpq cannot read is described, not raised again
        return "the configured address"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = params.get("port")
    return f"{host}:{port}" if port else host


def reason(exc: BaseException) -> str:
    """libpq's reason for a failed connection, reduced to its first meaningful line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # "connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused"
    text = text.rsplit(" failed: ", 1)[-1]
    return " ".join(text.replace("FATAL:", "").split())[:200] or type(exc).__name__


def unreachable(
    url: str, exc: BaseException | None = None, *, name: str = "the database", hint: str = ""
) -> DatabaseUnavailable:
    """The error for a database at ``url`` that did not accept a connection (``exc`` says why).

    ``name`` says which database ("DATABASE_URL", "the embedded PostgreSQL"); ``hint`` what to do.
    """
    message = f"{name} cannot be reached ({where(url)})"
    if exc is not None:
        message += f": {reason(exc)}"
    if hint:
        message += f"; {hint}"
    return DatabaseUnavailable(message)
