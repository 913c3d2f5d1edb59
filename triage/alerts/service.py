"""Alerts as the entry points use them: the workers' periodic `Watch`, a lead's test alert, the recent events and
attempts (`triage alerts`, Settings → Alerts)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from db import alerts as db_alerts
from db.engine import Database
from triage.access import Action, Actor, require
from triage.alerts import channels, checks, config, outbox
from triage.errors import InputError
from triage.settings import Settings, effective

log = logging.getLogger(__name__)


def _policy(db: Database, base: Settings | None) -> Any:
    return lambda: effective(db, base)[0].mask_policy


def check_now(db: Database, base: Settings | None = None, *, now: datetime | None = None) -> checks.Found:
    """One check of every alert turned on (nothing when alerts are off or have nowhere to go). No actor: the
    workers make it, and it only reads figures and records events."""
    cfg = config.load(db)
    if not cfg.active:
        return checks.Found([], [])
    settings, taxonomy = effective(db, base)
    return checks.check(db, cfg, settings, taxonomy, now or datetime.now(UTC))


def deliver_now(db: Database, base: Settings | None = None, *,
                now: datetime | None = None) -> list[outbox.Delivered]:
    """Send what is due (nothing while alerts are off: their deliveries wait, and expire after a day)."""
    cfg = config.load(db)
    if not cfg.enabled:
        return []
    return outbox.deliver_due(db, cfg, _policy(db, base), now=now)


class Watch:
    """The workers' alert duty, on a thread of its own beside their queue work (a long pass never delays an alert):
    checks every `check_every` seconds and sends what is due every `deliver_every` seconds. Never raises: a
    failure is logged (its kind, never an address) and the watch goes on."""

    def __init__(self, db: Database, base: Settings | None = None, *, check_every: float = 60.0,
                 deliver_every: float = 10.0):
        self.db, self.base = db, base
        self.check_every, self.deliver_every = check_every, deliver_every
        self._checked: float | None = None
        self._delivered: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Watch:
        self._thread = threading.Thread(target=self._loop, name="triage-alerts", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, final: bool = False) -> None:
        """End the thread (a send in progress finishes, within its timeout); `final`: one last check and delivery
        first-hand (`triage worker --once` announces what its pass decided)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=channels.TIMEOUT_S * 2 + 5)
        if final:
            self.tick(force=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(min(self.check_every, self.deliver_every))

    def tick(self, *, force: bool = False) -> None:
        now = time.monotonic()
        try:
            if force or self._checked is None or now - self._checked >= self.check_every:
                self._checked = now
                check_now(self.db, self.base)
            if force or self._delivered is None or now - self._delivered >= self.deliver_every:
                self._delivered = now
                for done in deliver_now(self.db, self.base):
                    if not done.ok:
                        log.warning("alert %s (%s) attempt %d failed: %s", done.key, done.channel, done.number,
                                    done.error)
        except Exception as exc:
            log.warning("alerts: %s", type(exc).__name__, exc_info=True)


@contextlib.contextmanager
def watching(db: Database, base: Settings | None = None) -> Iterator[Watch]:
    """A `Watch` running for the duration of a worker's work, with one last check and delivery at its end."""
    watch = Watch(db, base).start()
    try:
        yield watch
    finally:
        watch.stop(final=True)


def send_test(db: Database, *, actor: Actor, base: Settings | None = None) -> list[outbox.Delivered]:
    """A lead's test alert to every channel configured, sent now (once, not retried) and logged like any other.
    InputError when no channel is configured."""
    require(actor, Action.CONFIGURE)
    cfg = config.load(db)
    if not cfg.channels:
        raise InputError("no channel is configured: give a webhook address, or an SMTP host, sender and recipients")
    now = datetime.now(UTC)
    condition = f"test:{uuid.uuid4().hex[:12]}"
    with db.transaction() as s:
        event_id = db_alerts.insert_event(s, condition=condition, episode=1, kind="test", now=now,
                                          channels=cfg.channels, title="Test alert from Triage",
                                          facts={"sent by": actor.identity, "alerts": "on" if cfg.enabled else "off"})
        assert event_id is not None
        ids = db_alerts.deliveries_of(s, event_id)
    out = [outbox.deliver(db, cfg, i, _policy(db, base), now=now) for i in ids]
    return [d for d in out if d is not None]


def recent(db: Database, *, actor: Actor, limit: int = 50) -> list[dict[str, Any]]:
    """The latest events, newest first, with their deliveries and every attempt (a lead's)."""
    require(actor, Action.CONFIGURE)
    with db.read() as s:
        return db_alerts.recent(s, limit)


def run_check(db: Database, *, actor: Actor, base: Settings | None = None) -> tuple[checks.Found,
                                                                                     list[outbox.Delivered]]:
    """`triage alerts --check`: one check and one delivery round now, as a worker makes them (a lead's)."""
    require(actor, Action.CONFIGURE)
    return check_now(db, base), deliver_now(db, base)


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def describe(events: list[dict[str, Any]]) -> list[str]:
    """Recent events as lines for a terminal: each event, then each delivery and its attempts."""
    lines: list[str] = []
    for e in events:
        lines.append(f"{_when(e['created_at'])}  {e['kind']:<12} {e['title']}  [{e['key']}]"
                     + ("" if e["deliveries"] else "  (no delivery: announced in a summary, or no channel)"))
        for d in e["deliveries"]:
            lines.append(f"    {d['channel']:<8} {d['state']:<8} {d['attempts']} attempt(s)"
                         + (f", next at {_when(d['next_at'])}" if d["state"] == "pending" else ""))
            lines += [f"        #{t['number']} {_when(t['at'])} {'ok' if t['ok'] else 'failed'}"
                      + (f" {t['status']}" if t["status"] is not None else "")
                      + (f": {t['error']}" if t["error"] else "") + f" ({t['latency_ms']} ms)" for t in d["tries"]]
    return lines


def configure(db: Database, assignments: list[str], *, actor: Actor,
              read_secret: Any = None) -> config.AlertConfig:
    """`triage alerts --set NAME=VALUE ...`: a lead's changes as the Settings page saves them (the same checks and
    audit). `webhook_url=-` reads the address from `read_secret` (stdin), so its token stays out of the shell's
    history."""
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set takes NAME=VALUE, not {item!r}")
        if name.strip() == "webhook_url" and value == "-" and read_secret is not None:
            value = str(read_secret()).strip()
        values[name.strip()] = value
    return config.save(db, actor=actor, **values)
