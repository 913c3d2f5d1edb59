"""The dashboard's background worker: a thread that drains the durable queue, so a click never cancels work.

It only reads and writes the database; pages poll the database. Never calls Streamlit."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from dataclasses import dataclass

from db.engine import Database
from triage import batches, services
from triage.errors import TriageError
from triage.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WorkerStatus:
    last_error: str | None = None  # why the last pass stopped or failed, shown on the pages; None when fine


class BackgroundWorker:
    def __init__(self, db: Database, settings: Settings | None = None, poll_seconds: float = 1.0,
                 pause_after_key_error: float = 30.0, batch_every: float = 60.0):
        self.db = db
        self.settings = settings or Settings.from_env()  # the key and endpoint are read once, at start
        self.poll_seconds = poll_seconds
        self.pause_after_key_error = pause_after_key_error
        self.batch_every = batch_every  # seconds between looks at open Message Batches (and on every wake)
        self._batches_at = 0.0
        self.status = WorkerStatus()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="triage-worker", daemon=True)

    def start(self) -> BackgroundWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        """New work was queued: look now instead of at the next poll."""
        self._batches_at = 0.0
        self._wake.set()

    def _check_batches(self, settings: Settings) -> None:
        """Submit queued economy batches and record the ended ones (their unsure and expired tickets then become
        pending work for the pass that follows). Errors are shown on the page; the worker goes on."""
        if time.monotonic() - self._batches_at < self.batch_every:
            return
        self._batches_at = time.monotonic()
        try:
            for news in batches.collect_open(self.db, settings):
                if news.state in ("unreachable", "failed"):
                    self.status.last_error = news.message
        except Exception as exc:
            log.exception("checking Message Batches failed")
            self.status.last_error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._pass())
            self._wake.clear()

    def _pass(self) -> float:
        """One pass over the queue; returns how long to wait before the next one."""
        try:
            if not self.settings.has_api_key:  # no key: the local tier classifies, the review queue escalates
                services.classify_locally(self.db, self.settings)
                return self.poll_seconds
            self._check_batches(self.settings)
            report = asyncio.run(services.work_once(self.db, self.settings))
        except TriageError as exc:  # a setting or input problem: shown on the pages, retried later
            self.status.last_error = str(exc)
            return 5.0
        except Exception as exc:  # keep the worker alive; the error is shown on the page
            if self._stop.is_set() or sys.is_finalizing() or "interpreter shutdown" in str(exc):  # server stopping
                return 0.0
            log.exception("background worker pass failed")
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            return 5.0
        if report.stopped:
            self.status.last_error = report.stopped
            return self.pause_after_key_error
        if report.processed:
            self.status.last_error = None
        return self.poll_seconds
