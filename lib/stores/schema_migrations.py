"""``aitradex_meta.schema_migrations``: which migrations are applied, read as a caller (diagnostics).

``lib.db.migrate`` owns the table (it creates it and records every migration as the owner); this is its
read-only view for a service-role session, where the health check runs.
"""

from __future__ import annotations

from lib.db.session import Caller, Database

_APPLIED = "select version, checksum from aitradex_meta.schema_migrations"


async def applied_checksums(db: Database) -> dict[str, str]:
    """``{version: checksum}`` of every applied migration (as service_role)."""
    async with db.read(Caller.service()) as conn:
        rows = await (await conn.execute(_APPLIED)).fetchall()
    return {r["version"]: r["checksum"] for r in rows}
