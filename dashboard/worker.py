"""The dashboard's background worker: a thread that drains the durable queue, so a click never cancels work.

It only reads and writes the database; pages poll the database. Never calls Streamlit."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from db.engine import Database
from triage import batches, services
from triage.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WorkerStatus:
    running: bool = False
    busy: bool = False
    processed: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


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
        self.status.running = True
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
                    self.status.last_error, self.status.last_error_at = news.message, time.time()
        except Exception as exc:
            log.exception("checking Message Batches failed")
            self.status.last_error, self.status.last_error_at = f"{type(exc).__name__}: {exc}", time.time()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.status.running = False

    def _loop(self) -> None:
        while not self._stop.is_set():
            settings = self.settings
            wait = self.poll_seconds
            if settings.has_api_key:
                try:
                    self.status.busy = True
                    self._check_batches(settings)
                    report = asyncio.run(services.work_once(self.db, settings))
                    self.status.processed += report.processed
                    if report.stopped:
                        self.status.last_error, self.status.last_error_at = report.stopped, time.time()
                        wait = self.pause_after_key_error
                    elif report.processed:
                        self.status.last_error = None
                except Exception as exc:  # keep the worker alive; the error is shown on the page
                    log.exception("background worker pass failed")
                    self.status.last_error, self.status.last_error_at = f"{type(exc).__name__}: {exc}", time.time()
                    wait = 5.0
                finally:
                    self.status.busy = False
            else:
                try:  # no key: the local tier classifies, the review queue is the escalation
                    self.status.busy = True
                    self.status.processed += services.classify_locally(self.db, settings)
                except Exception as exc:
                    log.exception("local classification failed")
                    self.status.last_error, self.status.last_error_at = f"{type(exc).__name__}: {exc}", time.time()
                    wait = 5.0
                finally:
                    self.status.busy = False
            self._wake.wait(wait)
            self._wake.clear()
