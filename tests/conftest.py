import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.engine import Database
from tests.support.fake_anthropic import FakeAnthropic


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A fake Messages API; the test fails if the engine sent any body the real API would reject."""
    with FakeAnthropic() as server:
        yield server
        assert not server.invalid, f"invalid request bodies sent: {server.invalid[:2]}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'triage.db'}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    from db.migrate import open_database

    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def env(fake: FakeAnthropic, db_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for CLI runs against the fake server and a temporary database."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    return dict(os.environ)


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A migrated database for CLI runs (TRIAGE_DATABASE_URL points at it), with no API key set."""
    from db.migrate import open_database

    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    db = open_database(db_url)
    yield db
    db.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main thread for the rest of
    the session, which would break asyncio.run() in the tests after it."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)

