"""Database tests run on SQLite and on a real PostgreSQL server (skipped, with the reason, when none answers)."""

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("TRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://triage:triage@127.0.0.1:5432/postgres")


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to reach the server means "skip, and say why"
        return f"no PostgreSQL server at {PG_ADMIN_URL.split('@')[-1]} ({type(exc).__name__}); " \
               "run scripts/test-services as root or set TRIAGE_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'triage.db'}"
        return
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    name = f"triage_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def anydb(any_db_url):
    from db.migrate import open_database

    database = open_database(any_db_url)
    yield database
    database.dispose()
