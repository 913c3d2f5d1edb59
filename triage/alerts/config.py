"""A lead's alert configuration: where alerts go (a webhook, e-mail over SMTP), which alerts, and whether they may
carry ticket text (masked, off by default). Stored as its own settings row (`alerts`), never shown by
`triage settings`; saving is a lead's action, checked and audited (the webhook address only as set, changed or
removed: Slack's carry their token in the path, so the address is a secret, never shown in full or logged).

The webhook address is checked when saved and again when sent (triage/alerts/channels.py): http or https, no user
name or password in it, and a host that is not this machine or the private network, nor ever a link-local address
(where cloud metadata services answer), so a lead's form cannot be used to make the server call inside its own
network (SSRF). `TRIAGE_ALERT_PRIVATE_HOSTS=1` in the server's environment allows private and loopback hosts
(an internal chat server, a local test receiver); plain http is accepted only for those."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from db import alerts as db_alerts
from db import settings as db_settings
from db.engine import Database
from triage import audit
from triage.access import Action, Actor, require
from triage.errors import InputError

PRIVATE_ENV = "TRIAGE_ALERT_PRIVATE_HOSTS"  # 1: private and loopback hosts may receive alerts
PASSWORD_ENV = "TRIAGE_SMTP_PASSWORD"  # the SMTP password, from the environment only (never stored)
SETTINGS_ALERTS = "settings.alerts"  # the audit event
WEBHOOK, EMAIL = "webhook", "email"
MAX_RECIPIENTS = 20
MAX_QUEUE = 1_000_000
_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_TEAM = re.compile(r"^[\w][\w .&/-]{0,63}$")


@dataclass(frozen=True)
class AlertConfig:
    enabled: bool = False  # closed by default: nothing is noticed or sent until a lead turns alerts on
    webhook_url: str = ""  # a secret: shown only as `shown_url`
    email_to: tuple[str, ...] = ()
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_from: str = ""
    smtp_user: str = ""  # the password comes from TRIAGE_SMTP_PASSWORD
    smtp_starttls: bool = True
    urgent: bool = True  # a ticket at the scale's most urgent level arrived ...
    urgent_teams: tuple[str, ...] = ()  # ... for these teams (empty: every team)
    review_queue_over: int = 0  # the review queue passed this many waiting (0: off)
    budget: bool = True  # a budget passed its warning level or its cap
    spikes: bool = True  # the escalation rate or a category's share jumped against its baseline
    include_text: bool = False  # an urgent ticket's alert carries its masked text (off: ids and labels only)
    since: str | None = None  # when alerts were turned on (ISO, UTC): urgent tickets from then on

    @property
    def channels(self) -> tuple[str, ...]:
        out = []
        if self.webhook_url:
            out.append(WEBHOOK)
        if self.smtp_host and self.email_to and self.smtp_from:
            out.append(EMAIL)
        return tuple(out)

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.channels)

    @property
    def since_at(self) -> datetime | None:
        return datetime.fromisoformat(self.since) if self.since else None

    def shown(self) -> dict[str, Any]:
        """The configuration as anyone may see it: the webhook address masked."""
        return {**asdict(self), "webhook_url": shown_url(self.webhook_url)}


def shown_url(url: str) -> str:
    """A webhook address as it may be shown: its scheme and host, and the last 4 characters (to tell two apart)."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…{url[-4:]}"


def private_allowed(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def address_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    """Why an alert may not be sent to this address, or None. Link-local (cloud metadata), multicast, unspecified
    and reserved addresses never; loopback and private ones only when the server's environment allows them."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "a link-local, multicast or reserved address"
    if not ip.is_global and not allow_private:
        return f"a loopback or private address (set {PRIVATE_ENV}=1 where the server runs to allow one)"
    return None


def check_webhook(url: str, allow_private: bool | None = None) -> str:
    """The address as stored, or InputError saying what is wrong (never repeating the address)."""
    allow = private_allowed() if allow_private is None else allow_private
    url = url.strip()
    if len(url) > 2000:
        raise InputError("the webhook address is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InputError("the webhook address is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("the webhook address must be an http(s) URL, such as https://hooks.slack.com/services/...")
    if parts.username or parts.password:
        raise InputError("the webhook address must not carry a user name or password before the host")
    if port == 0:
        raise InputError("the webhook address has no valid port")
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        ip = None
        if parts.hostname.lower() in ("localhost", "localhost.localdomain") and not allow:
            raise InputError(f"the webhook host is this machine (set {PRIVATE_ENV}=1 where the server runs to "
                             "allow it)") from None
    if ip is not None and (why := address_refused(ip, allow)):
        raise InputError(f"the webhook host is {why}")
    if parts.scheme == "http" and not allow:
        raise InputError("the webhook address must use https (its token would travel in clear text)")
    return url


def _bool(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"{what} is on or off, not {value!r}")


def _int(value: object, what: str, low: int, high: int) -> int:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InputError(f"{what} must be a whole number, not {value!r}") from None
    if number != int(number) or not low <= number <= high:
        raise InputError(f"{what} is a whole number from {low} to {high}, not {value!r}")
    return int(number)


def _list(value: object) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[,;\s]+", value) if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    raise InputError(f"a list is expected, not {value!r}")


def checked(values: Mapping[str, object]) -> dict[str, Any]:
    """The one rule for what a lead may save: each name a field, each value of its type and range."""
    names = {f.name for f in fields(AlertConfig)} - {"since"}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(f"not an alert setting: {', '.join(unknown)} (they are: {', '.join(sorted(names))})")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "webhook_url":
            out[key] = check_webhook(str(value)) if str(value or "").strip() else ""
        elif key in ("enabled", "smtp_starttls", "urgent", "budget", "spikes", "include_text"):
            out[key] = _bool(value, key)
        elif key == "smtp_port":
            out[key] = _int(value, "the SMTP port", 1, 65535)
        elif key == "review_queue_over":
            out[key] = _int(value, "the review queue limit", 0, MAX_QUEUE)
        elif key == "email_to":
            to = _list(value)
            bad = [a for a in to if not _EMAIL.match(a)]
            if bad or len(to) > MAX_RECIPIENTS:
                raise InputError(f"not an e-mail address: {bad[0]!r}" if bad else
                                 f"at most {MAX_RECIPIENTS} recipients")
            out[key] = tuple(to)
        elif key == "smtp_from":
            text = str(value or "").strip()
            if text and not _EMAIL.match(text):
                raise InputError(f"the sender is not an e-mail address: {text!r}")
            out[key] = text
        elif key == "smtp_host":
            text = str(value or "").strip()
            if text and not _HOST.match(text):
                raise InputError(f"not a host name: {text!r}")
            out[key] = text
        elif key == "smtp_user":
            out[key] = str(value or "").strip()[:200]
        else:  # urgent_teams
            teams = _list(value) if not isinstance(value, str) else [t.strip() for t in value.split(",") if t.strip()]
            bad = [t for t in teams if not _TEAM.match(t)]
            if bad:
                raise InputError(f"not a team name: {bad[0]!r}")
            out[key] = tuple(teams)
    return out


def _from_stored(stored: Mapping[str, Any] | None) -> AlertConfig:
    if not stored:
        return AlertConfig()
    names = {f.name for f in fields(AlertConfig)}
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in names}
    return AlertConfig(**values)


def load(db: Database) -> AlertConfig:
    """The configuration in force (the defaults, alerts off, until a lead saves one)."""
    with db.read() as s:
        return _from_stored(db_settings.get(s, db_alerts.KEY))


def read(db: Database, *, actor: Actor) -> AlertConfig:
    """The configuration for a lead's form (the webhook address is still only ever shown masked)."""
    require(actor, Action.CONFIGURE)
    return load(db)


def save(db: Database, *, actor: Actor, now: datetime | None = None, **values: object) -> AlertConfig:
    """A lead's changes (`webhook_url` None or left out: keep the one saved; "": remove it), checked by `checked`
    and audited in the same transaction; nothing is written when any value is refused. Turning alerts on starts
    their clock: urgent tickets that arrived before are not announced."""
    require(actor, Action.CONFIGURE)
    if values.get("webhook_url") is None:
        values.pop("webhook_url", None)
    changes = checked(values)
    with db.transaction() as s:
        before = _from_stored(db_settings.get(s, db_alerts.KEY))
        after = replace(before, **changes)
        if after.enabled and not before.enabled:
            after = replace(after, since=(now or datetime.now(UTC)).isoformat())
        stored = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(after).items()}
        db_settings.put(s, db_alerts.KEY, stored, operator=actor.identity)
        audit.record(s, actor, SETTINGS_ALERTS, changed=_changed(before, after))
    return after


def _changed(before: AlertConfig, after: AlertConfig) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in fields(AlertConfig):
        old, new = getattr(before, f.name), getattr(after, f.name)
        if old == new or f.name == "since":
            continue
        if f.name == "webhook_url":
            out[f.name] = "removed" if not new else "set" if not old else "changed"
        else:
            out[f.name] = [list(old) if isinstance(old, tuple) else old, list(new) if isinstance(new, tuple) else new]
    return out
