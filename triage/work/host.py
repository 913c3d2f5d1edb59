"""Which process this is (`host:pid:start`, the name on its claims and reservations) and whether another is alive."""

from __future__ import annotations

import functools
import os
import secrets
import socket

from triage.domain import worker_identity


def worker_name() -> str:
    """This process's name: the same for the whole process, different for every process start."""
    return _name(os.getpid())


@functools.cache
def _name(pid: int) -> str:  # keyed by pid: a forked child is a process of its own
    return worker_identity(socket.gethostname(), pid, secrets.token_hex(4))


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
