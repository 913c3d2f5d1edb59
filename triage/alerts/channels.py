"""Where alerts go: a webhook (Slack- and Teams-compatible JSON, `{"text": ...}`) and e-mail over SMTP.

Each send is one attempt, made outside any database transaction; it returns nothing or raises `Failed` with what
may be logged: the HTTP or SMTP status and the error's kind, never the webhook's address (its path carries the
token). The webhook's host is resolved here and every address it resolves to checked (config.address_refused);
the connection is then made to the checked address itself, with the host name kept for TLS and the Host header,
so a name that resolves differently a moment later (DNS rebinding) cannot redirect it. Redirects are not followed.
Every request carries the event's key (header `X-Triage-Alert`), so a receiver that deduplicates can."""

from __future__ import annotations

import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import urlsplit

from triage.alerts.config import AlertConfig, address_refused, check_webhook, private_allowed

TIMEOUT_S = 10.0
KEY_HEADER = "X-Triage-Alert"


class Failed(Exception):
    """One attempt that did not deliver. `permanent`: trying again cannot help (the receiver refused it)."""

    def __init__(self, error: str, *, status: int | None = None, permanent: bool = False,
                 retry_after: float | None = None):
        super().__init__(error)
        self.error, self.status, self.permanent, self.retry_after = error, status, permanent, retry_after


def _kind(exc: BaseException) -> str:
    """An exception's kind for the log: its type, and an SSL error's reason (certificate problems)."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return f"{type(exc).__name__}" + (f" ({reason})" if isinstance(reason, str) else "")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, ip: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, ip: str, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._ip = ip

    def connect(self) -> None:
        raw = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _checked_address(host: str, port: int, allow_private: bool) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Failed(f"the webhook host could not be resolved ({_kind(exc)})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        why = address_refused(ipaddress.ip_address(address.split("%")[0]), allow_private)
        if why:
            raise Failed(f"the webhook host resolves to {why}", permanent=True)
    if not addresses:
        raise Failed("the webhook host has no address")
    return addresses[0]


def post_webhook(url: str, text: str, key: str, *, timeout: float = TIMEOUT_S) -> int:
    """POST `{"text": text}` to the webhook; the HTTP status when it answered 2xx, else Failed."""
    allow = private_allowed()
    try:
        check_webhook(url, allow)
    except ValueError as exc:
        raise Failed(str(exc), permanent=True) from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = _checked_address(host, port, allow)
    conn: http.client.HTTPConnection = (_PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP)(
        host, port, ip, timeout)
    body = json.dumps({"text": text}, ensure_ascii=False).encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json; charset=utf-8",
                                                       "User-Agent": "triage-alerts", KEY_HEADER: key})
        resp = conn.getresponse()
        resp.read(65536)
        status, retry_after = resp.status, resp.getheader("Retry-After")
    except (OSError, http.client.HTTPException) as exc:
        raise Failed(_kind(exc)) from None
    finally:
        conn.close()
    if 200 <= status < 300:
        return status
    wait = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
    if 300 <= status < 400:
        raise Failed(f"HTTP {status}: the webhook redirects, and redirects are not followed", status=status,
                     permanent=True)
    transient = status in (408, 425, 429) or status >= 500
    raise Failed(f"HTTP {status}", status=status, permanent=not transient, retry_after=wait)


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str


def send_email(cfg: AlertConfig, mail: Mail, key: str, *, password: str | None = None,
               timeout: float = TIMEOUT_S) -> int:
    """Send the alert to every recipient over SMTP (implicit TLS on port 465, else STARTTLS when configured); the
    server's reply code, or Failed (a 5xx reply or refused recipients are permanent)."""
    msg = EmailMessage()
    msg["Subject"] = " ".join(mail.subject.split())[:200]
    msg["From"] = cfg.smtp_from
    msg["To"] = ", ".join(cfg.email_to)
    msg["Message-ID"] = make_msgid(domain=cfg.smtp_from.rpartition("@")[2] or None)
    msg[KEY_HEADER] = key
    msg.set_content(mail.body)
    smtp_class = smtplib.SMTP_SSL if cfg.smtp_port == 465 else smtplib.SMTP
    try:
        with smtp_class(cfg.smtp_host, cfg.smtp_port, timeout=timeout) as smtp:
            if cfg.smtp_starttls and smtp_class is smtplib.SMTP:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.smtp_user:
                smtp.login(cfg.smtp_user, password or "")
            smtp.send_message(msg)
            return 250
    except smtplib.SMTPRecipientsRefused:
        raise Failed("SMTP: every recipient was refused", permanent=True) from None
    except smtplib.SMTPResponseException as exc:
        raise Failed(f"SMTP {exc.smtp_code}", status=exc.smtp_code, permanent=exc.smtp_code >= 500) from None
    except smtplib.SMTPNotSupportedError:
        raise Failed("SMTP: the server does not offer STARTTLS (turn it off only for a server on this machine)",
                     permanent=True) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise Failed(f"SMTP: {_kind(exc)}") from None
