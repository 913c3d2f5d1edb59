"""Database tests run on SQLite and on a real PostgreSQL server (tests/support/services.py: skipped with the reason when
none answers, a failure under CI=true). The PostgreSQL half carries the `postgres` marker: `-m "not postgres"`."""

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from db.engine import Database
from tests.support.services import service_missing

PG_ADMIN_URL = os.environ.get("TRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://triage:triage@127.0.0.1:5432/postgres")


def _where() -> str:
    try:
        return make_url(PG_ADMIN_URL).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: show no part of it that could hold a password
        return "TRIAGE_TEST_POSTGRES_URL (malformed)"


@functools.cache
def _pg_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run (None when they can); asked once per session."""
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # driver missing, bad URL, server down, wrong password: all reported with the cause
        cause = getattr(exc, "orig", None) or exc
        detail = (str(cause).strip().splitlines() or [""])[0][:200]
        hint = ("install the driver: pip install -e '.[postgres]'" if isinstance(cause, ImportError)
                else "run scripts/test-services as root, or set TRIAGE_TEST_POSTGRES_URL")
        return f"no usable PostgreSQL at {_where()}: {type(cause).__name__}: {detail} ({hint})"


@pytest.hookimpl(tryfirst=True)  # before -m selects on markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("any_db_url") == "postgres":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'triage.db'}"
        return
    yield from fresh_pg_database("triage_test")


def fresh_pg_database(prefix: str) -> Iterator[str]:
    """Yield the URL of a new, empty PostgreSQL database (dropped afterwards); skips (fails under CI) without one."""
    reason = _pg_unavailable()
    if reason:
        service_missing(reason)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def anydb(any_db_url: str) -> Iterator[Database]:
    from db.migrate import open_database

    database = open_database(any_db_url)
    yield database
    database.dispose()
