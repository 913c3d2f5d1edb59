"""The dashboard as a real server for tests: `streamlit run dashboard/app.py` on a free port, ready once its
health check answers, stopped (and its log checked for tracebacks) on the way out."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    port: int


@contextmanager
def streamlit_server(*, cwd: Path, env: Mapping[str, str], log_path: Path, port: int | None = None,
                     args: Sequence[str] = (), check_log: bool = True) -> Iterator[Server]:
    """Run the dashboard from `cwd` (whose .streamlit/ applies) with `env` and extra `args`. Fails the test with the
    log's end when it does not start within 30 s; with `check_log`, also when the log shows a traceback."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), *args],
                                cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(150):
                try:
                    if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.2)
            else:
                log.seek(0)
                pytest.fail("streamlit did not start:\n" + log.read()[-3000:])
            yield Server(url, port)
        finally:
            proc.terminate()
            try:
                proc.wait(30)  # a loaded machine can take a while to stop it cleanly
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if check_log:
            log.seek(0)
            tail = log.read()[-3000:]
            assert "Traceback" not in tail, tail
