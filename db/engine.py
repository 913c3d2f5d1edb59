"""Engines and sessions: SQLite tuned for several operators (WAL, busy timeout, foreign keys)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///data/triage.db"
BUSY_TIMEOUT_S = 30


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("TRIAGE_DATABASE_URL") or DEFAULT_URL


def make_engine(url: str | None = None) -> Engine:
    url = database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - exercised by every sqlite test
        # pysqlite's own transaction handling would delay BEGIN; we issue BEGIN IMMEDIATE ourselves for writes
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:  # pragma: no cover
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


class Database:
    """One engine; `read` sessions for queries, `write` sessions that take the write lock up front.

    On SQLite a write transaction starts with BEGIN IMMEDIATE so that it waits (busy timeout) instead of
    failing with "database is locked" when it later upgrades from a read lock. Keep write transactions short
    and never call an API inside one.
    """

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.engine = engine or make_engine(url)
        self.url = self.engine.url.render_as_string(hide_password=False)
        self.read: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self._write: sessionmaker[Session] = sessionmaker(
            self.engine.execution_options(write=True), expire_on_commit=False
        )
        # SQLite has one writer at a time. Threads of this process queue on a Python lock (woken at once)
        # rather than on SQLite's busy handler (which sleeps and polls); other processes still use the
        # busy timeout.
        self._write_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A short write transaction: commits on success, rolls back on error."""
        with self._write_lock or nullcontext(), self._write.begin() as session:
            yield session

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()
