"""Real local receivers for alert tests: an HTTP webhook receiver (http.server in a thread) and a minimal SMTP
server on a plain socket (aiosmtpd is not installed here). Both listen on 127.0.0.1 on a free port, record what they
accept, and can fail the first N deliveries."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class WebhookReceiver:
    """`with WebhookReceiver(fail_first=2) as hook:` POSTs to `hook.url` are recorded in `hook.accepted` (answered
    200) or `hook.refused` (answered `fail_status` while failures remain)."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500, path: str = "/services/T000/B000/SECRETTOKEN",
                 delay: float = 0.0) -> None:
        self.fail_first, self.fail_status, self.path, self.delay = fail_first, fail_status, path, delay
        self.accepted: list[Post] = []
        self.refused: list[Post] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                time.sleep(receiver.delay)  # a slow receiver: a racing worker has time to try the same delivery
                post = Post(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"{}"))
                with receiver._lock:
                    failing = receiver.fail_first > 0
                    if failing:
                        receiver.fail_first -= 1
                        receiver.refused.append(post)
                    else:
                        receiver.accepted.append(post)
                status = receiver.fail_status if failing else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def keys(self) -> list[str]:
        """The event keys of the accepted posts, in order."""
        with self._lock:
            return [p.headers.get("x-triage-alert", "") for p in self.accepted]


@dataclass
class SmtpReceiver:
    """A minimal SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no STARTTLS, no AUTH). Messages it
    accepted are in `messages`; with `fail_first` it answers the end of DATA with 451 that many times first."""

    fail_first: int = 0
    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> SmtpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")

        def say(line: str) -> None:
            conn.sendall(line.encode() + b"\r\n")

        rcpts: list[str] = []
        try:
            say("220 localhost test SMTP")
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    say("250-localhost")
                    say("250 8BITMIME")
                elif verb in ("HELO", "NOOP"):
                    say("250 OK")
                elif verb == "MAIL":
                    rcpts = []
                    say("250 OK")
                elif verb == "RCPT":
                    rcpts.append(line.split(":", 1)[1].strip().strip("<>"))
                    say("250 OK")
                elif verb == "RSET":
                    rcpts = []
                    say("250 OK")
                elif verb == "DATA":
                    say("354 end with <CRLF>.<CRLF>")
                    data = bytearray()
                    for body_line in f:
                        if body_line in (b".\r\n", b".\n"):
                            break
                        data += body_line[1:] if body_line.startswith(b"..") else body_line
                    with self._lock:
                        failing = self.fail_first > 0
                        if failing:
                            self.fail_first -= 1
                        else:
                            self.messages.append(message_from_bytes(bytes(data)))
                            self.recipients.append(list(rcpts))
                    say("451 try again later" if failing else "250 OK queued")
                elif verb == "QUIT":
                    say("221 bye")
                    break
                else:
                    say("502 not implemented")
        except OSError:
            pass
        finally:
            f.close()
            conn.close()
