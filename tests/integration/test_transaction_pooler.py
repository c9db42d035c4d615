"""The database layer behind a transaction-mode pooler (Supavisor's port 6543): prepared statements off.

The pooler stand-in (:mod:`tests.integration.pooler_proxy`) refuses any named prepared statement, which
is what breaks behind a real one. ``tests/integration/test_db_session.py`` and
``test_instruments_cache.py`` run every test through it as well; here: the setting reaches the pool,
and the stand-in does bite when the setting is wrong.
"""

from __future__ import annotations

import pytest

from lib.config import load_settings
from lib.db.session import Caller, Database
from lib.db.target import database_target
from lib.errors import AitradexError, ConfigError
from lib.stores import settings as settings_store
from tests.integration.pooler_proxy import RunningProxy

REPEATS = 20  # well past psycopg's default prepare_threshold (5)


async def _same_query_many_times(db: Database) -> None:
    for _ in range(REPEATS):
        async with db.read(Caller.service()) as conn:
            query = "select count(*) from public.signals where score >= %s"
            await (await conn.execute(query, (50,))).fetchone()
        await settings_store.environment(db)


async def test_with_prepared_statements_off_nothing_named_reaches_the_pooler(
    pooler_proxy: RunningProxy, pooled_db: Database
) -> None:
    named_before, unnamed_before = pooler_proxy.counts.named_parses, pooler_proxy.counts.unnamed_parses
    await _same_query_many_times(pooled_db)
    assert pooler_proxy.counts.named_parses == named_before
    assert pooler_proxy.counts.unnamed_parses > unnamed_before + REPEATS


async def test_with_prepared_statements_on_the_pooler_breaks_the_repeated_query(
    pooler_proxy: RunningProxy,
) -> None:
    wrong = Database(pooler_proxy.url, min_size=1, max_size=1)  # one connection: the repeats share it
    await wrong.open()
    try:
        named_before = pooler_proxy.counts.named_parses
        with pytest.raises(AitradexError):
            await _same_query_many_times(wrong)
        assert pooler_proxy.counts.named_parses == named_before + 1
    finally:
        await wrong.close()


def test_the_setting_reaches_the_applications_pool(test_env: dict[str, str]) -> None:
    assert database_target(load_settings(test_env)).prepared_statements is True
    off = load_settings({**test_env, "AITRADEX_DB_PREPARED_STATEMENTS": "off"})
    assert off.database.prepared_statements is False
    assert database_target(off).prepared_statements is False
    with pytest.raises(ConfigError, match="AITRADEX_DB_PREPARED_STATEMENTS"):
        load_settings({**test_env, "AITRADEX_DB_PREPARED_STATEMENTS": "maybe"})


def test_the_pool_size_is_a_setting_within_bounds(test_env: dict[str, str]) -> None:
    assert load_settings(test_env).database.pool_size == 10
    assert load_settings({**test_env, "AITRADEX_DB_POOL_SIZE": "4"}).database.pool_size == 4
    for bad in ("0", "201", "ten"):
        with pytest.raises(ConfigError, match="AITRADEX_DB_POOL_SIZE"):
            load_settings({**test_env, "AITRADEX_DB_POOL_SIZE": bad})
