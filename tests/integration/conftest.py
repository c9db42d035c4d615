"""Fixtures shared by the execution and tracking tests: a paper exchange per module, and the helpers
that seed users and signals on it (``tests/integration/execution_helpers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from lib.config import Settings
from lib.crypto import KeyVault
from lib.db.session import Database
from lib.db.target import DatabaseTarget
from lib.ops.stack_replay import stack_symbols
from lib.paper_exchange import PaperExchangeConfig, running_paper_exchange
from tests.integration.execution_helpers import Seeder, Signals
from tests.integration.pooler_proxy import RunningProxy, transaction_pooler


@pytest.fixture(scope="module")
def paper_url() -> Iterator[str]:
    """A paper exchange of the module's own (in memory, any free port), so modules never share a book.

    It lists what the stack's lists: the executor reads filters from the instruments cache, which every
    paper exchange of the test database shares.
    """
    config = PaperExchangeConfig(symbols=stack_symbols(), state_path=None, port=0)
    with running_paper_exchange(config) as url:
        yield url


@pytest.fixture
def vault(settings: Settings) -> KeyVault:
    """The stack's key vault (the same master keys the functions server uses)."""
    return KeyVault(settings.master_keys)


@pytest.fixture
async def seeder(
    db: Database, settings: Settings, owner_conn: psycopg.Connection, vault: KeyVault, paper_url: str
) -> AsyncIterator[Seeder]:
    """Creates users with paper accounts and preferences; closes its clients afterwards."""
    seeder = Seeder(owner_conn, settings.jwt_secret.reveal(), db, vault, paper_url)
    yield seeder
    seeder.close()


@pytest.fixture
async def signals(db: Database, paper_url: str) -> AsyncIterator[Signals]:
    """Inserts signals priced from the paper exchange's replay; closes its client afterwards."""
    book = Signals(db, paper_url)
    yield book
    await book.close()


@pytest.fixture(scope="session")
def pooler_proxy(stack: DatabaseTarget) -> Iterator[RunningProxy]:
    """A transaction-mode pooler's trap in front of the test database (:mod:`.pooler_proxy`)."""
    with transaction_pooler(stack.app_url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
async def pooled_db(pooler_proxy: RunningProxy) -> AsyncIterator[Database]:
    """The application's pool through the pooler, configured as a hosted deployment behind Supavisor's
    transaction mode must be (``AITRADEX_DB_PREPARED_STATEMENTS=off``)."""
    database = Database(pooler_proxy.url, max_size=4, prepared_statements=False)
    await database.open()
    yield database
    await database.close()
