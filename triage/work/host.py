"""Which process this is (`host:pid`, the name on its claims and reservations) and whether another is alive."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def hostname() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
