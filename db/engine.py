"""Engines and sessions: SQLite tuned for several operators (WAL, busy timeout, foreign keys)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_URL = "sqlite:///data/triage.db"
BUSY_TIMEOUT_S = 30.0  # how long a SQLite write waits for another process's lock; TRIAGE_BUSY_TIMEOUT_S overrides
WRITE_PATIENCE_S = 300.0  # how long `Database.write` keeps retrying a write that must not be lost
_PG_RETRYABLE = {"40001", "40P01", "55P03", "57P01", "08000", "08003", "08006"}  # serialization, deadlock, lock, gone


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched (`Session.execute` types every result as a plain Result)."""
    return int(cast(CursorResult[Any], result).rowcount)


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("TRIAGE_DATABASE_URL") or DEFAULT_URL


def busy_timeout_s() -> float:
    raw = os.environ.get("TRIAGE_BUSY_TIMEOUT_S")
    try:
        return float(raw) if raw else BUSY_TIMEOUT_S
    except ValueError:
        return BUSY_TIMEOUT_S


def is_busy(exc: BaseException) -> bool:
    """A write that failed because the database was locked or briefly unreachable, not because it was wrong."""
    if not isinstance(exc, OperationalError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code:
        return code in _PG_RETRYABLE
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def make_engine(url: str | None = None) -> Engine:
    url = database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    busy = busy_timeout_s()
    engine = create_engine(url, connect_args={"timeout": busy, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - exercised by every sqlite test
        # pysqlite's own transaction handling would delay BEGIN; we issue BEGIN IMMEDIATE ourselves for writes
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA secure_delete=ON")  # freed bytes are overwritten: erased text is gone from the file
        cur.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
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
        self.dialect: str = self.engine.dialect.name  # "sqlite" or "postgresql"
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

    def write(self, fn: Callable[[Session], T], *, patience: float = WRITE_PATIENCE_S) -> T:
        """`fn` in a write transaction, tried again with backoff while the database stays locked past the busy
        timeout (another process holding the write lock) or drops the connection. For writes that must not be
        lost, such as the record of a call the API has billed."""
        delay, deadline = 0.05, time.monotonic() + patience
        while True:
            try:
                with self.transaction() as s:
                    return fn(s)
            except OperationalError as exc:
                if not is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("database busy (%s); writing again in %.2f s", exc.orig, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def dispose(self) -> None:
        self.engine.dispose()
