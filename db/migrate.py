"""Alembic, driven from code: `triage db upgrade` and the app's start-up both call `upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from db.engine import Database, database_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    db = Database(url)
    try:
        _upgrade(db, revision)
    finally:
        db.dispose()


def open_database(url: str | None = None, migrate: bool = True) -> Database:
    """The database at `url` (or TRIAGE_DATABASE_URL), migrated to head."""
    db = Database(url)
    if migrate:
        _upgrade(db, "head")
    return db


def _upgrade(db: Database, revision: str) -> None:
    """Apply migrations in one transaction. On SQLite with foreign keys off: a batch migration rebuilds a table
    by copying and dropping it, and dropping `tickets` with foreign keys on would cascade-delete every call."""
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection if db.dialect == "sqlite" else None
        if raw is not None:  # outside any transaction (inside one the pragma is a no-op)
            raw.cursor().execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg = alembic_config(db.url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if raw is not None:
                raw.cursor().execute("PRAGMA foreign_keys=ON")


if __name__ == "__main__":  # `python -m db.migrate`: bring the configured database to the latest schema
    upgrade()
    print(f"database ready: {database_url()}")
