"""The dashboard's background worker: a thread that drains the durable queue, so a click never cancels work.

It only reads and writes the database; pages poll the database. Never calls Streamlit.

Idle, it costs next to nothing: every `poll_seconds` one read asks whether there is anything to do
(`services.has_work`: tickets waiting, a run to finish, a dead worker to recover), and only then does it make a full
pass (settings in force, budget, router, claims). `wake()` (new work queued from this process) skips the question,
so that work starts at once; work queued by another process (the CLI, another dashboard) waits at most a poll.

It stops cleanly when the server stops, before Python shuts down the thread pools a pass needs: no more claims,
the calls in flight get `stop_grace` seconds to return and be recorded, then are cut off and booked as lost
(probably billed); what it still holds is released."""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401  (registers its exit hook first, so that ours runs before it)
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from db.engine import Database
from triage import access, privacy
from triage.access import Actor, Role
from triage.alerts.service import Watch
from triage.errors import TriageError, for_people
from triage.settings import Settings, effective
from triage.work import backfill, classify, pilot, pipeline, services
from triage.work.pipeline import RunReport

log = logging.getLogger(__name__)

STOPPING = "the dashboard server is stopping"
RETENTION = Actor("worker:retention", Role.LEAD)  # who the audit trail names for erasures by retention


@dataclass
class WorkerStatus:
    last_error: str | None = None  # why the last pass stopped or failed, shown on the pages; None when fine


def unexpected(exc: BaseException, what: str) -> str:
    """A page's words for a failed step: what of the exception people may read (`errors.for_people`: a foreign
    error's kind, never its text, which is in the server's log)."""
    return f"{what} failed ({for_people(exc)})"


class BackgroundWorker:
    def __init__(self, db: Database, settings: Settings | None = None, poll_seconds: float = 1.0,
                 pause_after_key_error: float = 30.0, batch_every: float = 60.0, stop_grace: float = 5.0,
                 retention_every: float = 3600.0):
        self.db = db
        self.settings = settings or Settings.from_env()  # the key and endpoint are read once, at start
        self.poll_seconds = poll_seconds
        self.pause_after_key_error = pause_after_key_error
        self.batch_every = batch_every  # seconds between looks at open Message Batches (and on every wake)
        self.stop_grace = stop_grace  # how long a stop waits for the calls in flight before cutting them off
        self._batches_at = 0.0
        self.retention_every = retention_every  # retention (`retention_days`) is applied at most this often
        self._retention_at: float | None = None
        self.status = WorkerStatus()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._woken = True  # the first pass is a full one
        self._halting = pipeline.Stop(STOPPING, stop_grace)  # reaches the pass or pilot in progress from `stop`
        self._thread = threading.Thread(target=self._loop, name="triage-worker", daemon=True)
        self.alerts = Watch(db, self.settings)  # the lead's alerts: checked and sent on a thread of their own

    def start(self) -> BackgroundWorker:
        self._thread.start()
        self.alerts.start()
        _stop_before_exit(self)
        return self

    def wake(self) -> None:
        """New work was queued: look now instead of at the next poll."""
        self._batches_at = 0.0
        self._woken = True
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming, halt the pass in progress (its calls in flight get `stop_grace` seconds, then are booked
        as lost) and wait for the thread to end."""
        self._stop.set()
        self.alerts.stop()
        self._halting.request()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.stop_grace + 10)

    def _stopping(self) -> bool:
        return self._stop.is_set() or sys.is_finalizing()

    def _loop(self) -> None:
        while not self._stopping():
            self._wake.clear()
            woken, self._woken = self._woken, False
            self._wake.wait(self._round(woken))

    def _round(self, woken: bool) -> float:
        """Look at open batches when due; make a pass when woken or when there is work; how long to wait next."""
        if self.settings.has_api_key:
            self._check_batches(self.settings)
        self._apply_retention()
        self._run_pilots()
        if not woken and not self._has_work():
            backfill.when_idle(self.db, self.settings)  # old tickets' masked counts and languages, a batch at a time
            return self.poll_seconds
        return self._pass()

    def _has_work(self) -> bool:
        try:
            return services.has_work(self.db)
        except Exception:  # the database is unreachable: the full pass says why on the pages
            return not self._stopping()

    def _check_batches(self, settings: Settings) -> None:
        """Submit queued economy batches and record the ended ones (their unsure and expired tickets then become
        pending work for the pass that follows). Errors are shown on the page; the worker goes on."""
        if time.monotonic() - self._batches_at < self.batch_every:
            return
        self._batches_at = time.monotonic()
        try:
            for news in classify.collect_open(self.db, settings, actor=access.cli_actor()):  # the server's user
                if news.state in ("unreachable", "failed"):
                    self.status.last_error = news.message
        except Exception as exc:
            if self._stopping():  # a batch check is safe to interrupt: the next one resumes it
                return
            log.exception("checking Message Batches failed")
            self.status.last_error = unexpected(exc, "checking Message Batches")

    def _apply_retention(self) -> None:
        """Erase the tickets idle longer than the `retention_days` in force (0: keep forever), at most once every
        `retention_every` seconds (triage/privacy.py: the same erasure as `triage erase`, audited). Errors are shown
        on the page; the worker goes on."""
        now = time.monotonic()
        if self._retention_at is not None and now - self._retention_at < self.retention_every:
            return
        self._retention_at = now
        try:
            days = effective(self.db, self.settings)[0].retention_days
            if days > 0:
                done = privacy.purge(self.db, days, actor=RETENTION)
                if done.tickets:
                    log.info("retention: %s", done.describe())
        except Exception as exc:
            if self._stopping():
                return
            log.exception("applying retention failed")
            self.status.last_error = unexpected(exc, "erasing tickets past their retention")

    def _run_pilots(self) -> None:
        """Work the pilots leads queued on the Pilot page, one after the other, to their end (triage/work/pilot.py:
        under their own caps; acting as `access.cli_actor()`, the server's user, on what a lead queued). A pilot
        holds this thread while it runs (a few minutes for a few hundred tickets): queued work waits meanwhile.
        A server stop halts it like a pass (its calls in flight get `stop_grace` seconds, then are booked as lost):
        the pilot ends stopped, with what it measured, its unasked tickets left out (triage/work/pilot.py)."""
        while not self._stopping():
            try:
                if not pilot.waiting(self.db):
                    return
            except Exception:  # the database is unreachable: the pass says why on the pages
                return
            try:
                done = pilot.run(self.db, self.settings, actor=access.cli_actor(), stop=self._halting)
            except Exception as exc:
                if not self._stopping():
                    log.exception("running a pilot failed")
                    self.status.last_error = unexpected(exc, "running a pilot")
                return
            if done is None:
                return
            if done.stopped:
                log.info("pilot %s stopped: %s", done.pilot_id, done.stopped)

    async def _work_once(self) -> RunReport:
        """`services.work_once`, halted by `stop` from another thread."""
        with self._halting.halting() as halt:
            return await services.work_once(self.db, self.settings, halt=halt)

    def _pass(self) -> float:
        """One pass over the queue; returns how long to wait before the next one."""
        try:
            if not self.settings.has_api_key:  # no key: the local tier classifies, the review queue escalates
                services.classify_locally(self.db, self.settings)
                return self.poll_seconds
            report = asyncio.run(self._work_once())
        except TriageError as exc:  # a setting or input problem: shown on the pages, retried later
            self.status.last_error = str(exc)
            return 5.0
        except Exception as exc:  # keep the worker alive; the error is shown on the page
            if self._stopping():  # the server stopped under the pass: nothing to report, the loop ends
                return 0.0
            log.exception("background worker pass failed")
            self.status.last_error = unexpected(exc, "the last pass")
            return 5.0
        if self._stopping():
            return 0.0
        if report.stopped:
            self.status.last_error = report.stopped
            return self.pause_after_key_error
        if report.processed:
            self.status.last_error = None
        return self.poll_seconds


def _stop_before_exit(worker: BackgroundWorker) -> None:
    """Stop the worker when the interpreter exits (Streamlit stopped), while a pass can still finish cleanly.

    Streamlit releases no cached resource on exit, and `atexit` hooks run only after Python has shut the thread
    pools down (every database step of a pass goes through one: `asyncio.to_thread`). Hooks registered with
    `threading._register_atexit`, as concurrent.futures registers its own, run before that, newest first."""
    ref = weakref.ref(worker)

    def stop() -> None:
        if (w := ref()) is not None:
            w.stop()

    register: Callable[[Callable[[], None]], None] = threading._register_atexit  # type: ignore[attr-defined]
    register(stop)
