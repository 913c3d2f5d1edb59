"""Delivering alerts: the outbox drained by the workers that already run (the dashboard's background worker,
`triage worker`), once per event and channel.

Three steps, never a network call inside a database write transaction: claim the delivery (a short transaction:
a compare-and-set, so of two workers racing exactly one sends), send it (no transaction open), record the attempt
(another short transaction: the attempt logged, the delivery sent, backed off or given up). A claim whose process
went silent for LEASE is taken over: a crash between sending and recording may send that one alert twice, never
lose it (the `X-Triage-Alert` header carries the event's key for a receiver that deduplicates). An alert older
than EXPIRES is given up rather than sent late."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from db import alerts as db_alerts
from db.engine import Database
from triage.alerts import channels, rules
from triage.alerts.config import EMAIL, PASSWORD_ENV, WEBHOOK, AlertConfig
from triage.errors import InputError
from triage.routing import redact
from triage.work.host import worker_name

LEASE = timedelta(minutes=2)
EXPIRES = timedelta(hours=24)
EXCERPT = 300  # characters of masked ticket text, when a lead allows text


@dataclass(frozen=True)
class Delivered:
    """One attempt, as `triage alerts` and the Settings page report it."""

    key: str
    channel: str
    number: int
    ok: bool
    status: int | None
    error: str | None
    gave_up: bool  # failed for good: no further attempt


def _escape(text: str) -> str:
    """Slack reads <...> as links and mentions (<!channel>) and & as entities: escaped, so text shows as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def compose(item: db_alerts.Outgoing, excerpt: str | None) -> tuple[str, channels.Mail]:
    """The webhook's text and the e-mail of one alert: its title, its figures, the masked excerpt when allowed,
    and its key. Nothing else: ticket text only comes in as `excerpt`."""
    lines = [f"{k}: {v}" for k, v in item.facts.items()]
    if excerpt:
        lines.append(f"ticket text (masked): {excerpt}")
    created = item.created_at.replace(tzinfo=item.created_at.tzinfo or UTC)
    footer = f"Triage alert {item.key} · {created:%Y-%m-%d %H:%M} UTC"
    webhook = "\n".join([f"*{_escape(item.title)}*", *(f"• {_escape(line)}" for line in lines), _escape(footer)])
    mail = channels.Mail(f"[Triage] {item.title}", "\n".join([item.title, "", *lines, "", footer]) + "\n")
    return webhook, mail


def _excerpt(db: Database, cfg: AlertConfig, item: db_alerts.Outgoing,
             policy: Callable[[], redact.MaskPolicy]) -> str | None:
    """The ticket's masked text (first EXCERPT characters) when the lead allowed text; else None."""
    if not cfg.include_text or item.ticket_id is None:
        return None
    with db.read() as s:
        text = db_alerts.ticket_text(s, item.ticket_id)
    if not text:
        return None  # erased, or no such ticket
    try:
        masked = redact.mask(text, policy()).text
    except InputError:
        return "(withheld: the masking policy in force is refused; fix it in Settings → Personal data)"
    flat = " ".join(masked.split())
    return flat[:EXCERPT] + ("…" if len(flat) > EXCERPT else "")


def _send(cfg: AlertConfig, channel: str, webhook_text: str, mail: channels.Mail, key: str) -> int:
    if channel == WEBHOOK:
        if not cfg.webhook_url:
            raise channels.Failed("no webhook is configured any more", permanent=True)
        return channels.post_webhook(cfg.webhook_url, webhook_text, key)
    if channel == EMAIL:
        if EMAIL not in cfg.channels:
            raise channels.Failed("e-mail is not configured any more", permanent=True)
        return channels.send_email(cfg, mail, key, password=os.environ.get(PASSWORD_ENV))
    raise channels.Failed(f"unknown channel {channel!r}", permanent=True)


def deliver(db: Database, cfg: AlertConfig, delivery_id: int, policy: Callable[[], redact.MaskPolicy], *,
            now: datetime | None = None) -> Delivered | None:
    """Claim, send and record one delivery; None when another worker has it (or it is not due)."""
    at = now or datetime.now(UTC)
    me = worker_name()
    with db.transaction() as s:
        if not db_alerts.claim(s, delivery_id, me, at, at - LEASE):
            return None
        item = db_alerts.outgoing(s, delivery_id)
    created = item.created_at.replace(tzinfo=item.created_at.tzinfo or UTC)
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    permanent = False
    if at - created > EXPIRES:
        error, permanent = f"expired: not delivered within {EXPIRES.total_seconds() / 3600:.0f} hours", True
    else:
        webhook_text, mail = compose(item, _excerpt(db, cfg, item, policy))
        try:
            status = _send(cfg, item.channel, webhook_text, mail, item.key)
        except channels.Failed as exc:
            status, error, permanent, retry_after = exc.status, exc.error, exc.permanent, exc.retry_after
    latency = int((time.monotonic() - started) * 1000)
    done = now or datetime.now(UTC)
    number = item.attempts + 1
    gave_up = error is not None and (permanent or number >= rules.MAX_ATTEMPTS or item.kind == "test")
    next_at = None if error is None or gave_up else done + rules.backoff(number, retry_after)
    db.write(lambda s: db_alerts.record_attempt(s, delivery_id, worker=me, now=done, ok=error is None,
                                                status=status, error=error, latency_ms=latency, next_at=next_at))
    return Delivered(item.key, item.channel, number, error is None, status, error, gave_up)


def deliver_due(db: Database, cfg: AlertConfig, policy: Callable[[], redact.MaskPolicy], *,
                now: datetime | None = None, limit: int = 20) -> list[Delivered]:
    """Every delivery due now (at most `limit`), each claimed, sent and recorded in turn."""
    at = now or datetime.now(UTC)
    with db.read() as s:
        ids = db_alerts.due(s, at, at - LEASE, limit)
    out = []
    for delivery_id in ids:
        done = deliver(db, cfg, delivery_id, policy, now=now)
        if done is not None:
            out.append(done)
    return out
