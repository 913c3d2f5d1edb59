"""Alembic, driven from code: `triage db upgrade` and the app's start-up both call `upgrade`.

Several processes may start at once on a new database (a team's workers, a cron job beside the dashboard): one
migrates while the others wait for it. SQLite: an exclusive file lock beside the database, then the migration in
a BEGIN IMMEDIATE transaction. PostgreSQL: a transaction-scoped advisory lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db.engine import Database, database_url

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 7_432_017_955_101


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def _file_lock(db: Database) -> Iterator[None]:
    """An exclusive lock on DATABASE.migrate.lock for SQLite files; nothing for other databases."""
    url = make_url(db.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: BEGIN IMMEDIATE alone serialises the migration
        yield
        return
    with open(f"{url.database}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apply_migrations(db: Database, revision: str = "head") -> None:
    """Bring `db` to `revision` in one transaction, one process at a time. On SQLite with foreign keys off: a
    batch migration rebuilds a table by copying and dropping it, and dropping `tickets` with foreign keys on would
    cascade-delete every call."""
    cfg = alembic_config(db.url)
    with _file_lock(db), db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection if db.dialect == "sqlite" else None
        if raw is not None:  # outside any transaction (inside one the pragma is a no-op)
            raw.cursor().execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.execution_options(write=True).begin():  # SQLite: BEGIN IMMEDIATE, the write lock up front
                if db.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if raw is not None:
                raw.cursor().execute("PRAGMA foreign_keys=ON")


def upgrade(url: str | None = None, revision: str = "head") -> None:
    db = Database(url)
    try:
        apply_migrations(db, revision)
    finally:
        db.dispose()


def open_database(url: str | None = None, migrate: bool = True) -> Database:
    """The database at `url` (or TRIAGE_DATABASE_URL), migrated to head."""
    db = Database(url)
    if migrate:
        apply_migrations(db)
    return db


if __name__ == "__main__":  # `python -m db.migrate`: bring the configured database to the latest schema
    upgrade()
    print(f"database ready: {database_url()}")
