"""What open dashboard tabs cost the server: N real Chromium tabs on the Classify page of one `streamlit run`.

    .venv/bin/python -m bench.bench_tabs [--tabs 20] [--tickets 1000] [--delay 0.3] [--window 30]

Starts `streamlit run dashboard/app.py` on a temporary SQLite database with the fake Messages API
(tests/support/fake_anthropic.py, answering in --delay seconds), opens tabs with Playwright in Debian's Chromium, and
reads the server process's CPU time (utime + stime from /proc/PID/stat; the background worker is a thread of
that process, so classification work counts too). Phases, each measured in the same run:

1. no tab open, nothing to do: the idle server (the worker's once-a-second look at the queue) = the baseline;
2. 1 and then N tabs, each of which pasted 3 tickets, pressed Classify and saw them done (runs finished);
3. a --tickets run with no tab open: the classification work alone, and its throughput;
4. the same size of run watched by all N tabs (opened on its link, ?run=ID): throughput and server CPU.

The run's tickets are held (claimed by the benchmark) until every tab shows them, then released to the worker,
so both runs are timed from the same start; while the watched run is timed, Chromium runs at nice 19 (operators'
browsers run on their own machines, not on the server's cores). Prints CPU per tab (minus the baseline),
throughput ratios, what the browser and the rest of the machine used meanwhile (2 cores shared with others: read
the noise), and how many reruns the tabs asked for. Targets: an idle tab <= 0.01 of a core; N=20 tabs watching
an active run <= 0.5 of a core together; the run keeps >= 0.9 of its no-tab throughput. Not part of the test
pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from db import queue, runs
from db.engine import Database
from db.migrate import open_database
from db.models import ModelCall, Ticket
from tests.support.fake_anthropic import FakeAnthropic

if TYPE_CHECKING:  # Playwright is imported when a benchmark starts (a dev dependency)
    from playwright.sync_api import Browser, BrowserContext, Page

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
HOLD = "bench:hold"


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def lower_priority(pids: list[int], keep: int) -> None:
    """Operators' browsers run on their own machines; here Chromium shares 2 cores with the server, so while a run
    is timed every thread of it runs at nice 19 (what it uses is still printed apart)."""
    for pid in pids:
        if pid == keep:
            continue
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):  # gone meanwhile
                os.setpriority(os.PRIO_PROCESS, int(task.name), 19)


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, from /proc/stat)."""
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in
                                                             Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Sample:
    """CPU used over a window: the server, the browser (Playwright's driver and Chromium), this process (the fake
    API and Playwright's client) and everything else on the machine."""

    seconds: float
    server: float
    browser: float
    bench: float
    machine: float

    def rate(self, what: str) -> float:
        return float(getattr(self, what)) / self.seconds

    def line(self) -> str:
        others = max(self.machine - self.server - self.browser - self.bench, 0.0)
        return (f"server {self.rate('server'):.3f}, browser {self.rate('browser'):.3f}, bench+fake API "
                f"{self.rate('bench'):.3f}, rest of the machine {others / self.seconds:.3f} of a core "
                f"(over {self.seconds:.1f} s)")


class Meter:
    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.start = self._read()

    def _read(self) -> tuple[float, float, float, float, float]:
        browser = sum(proc_cpu(p) for p in descendants(os.getpid()) if p != self.server_pid)
        return (time.monotonic(), proc_cpu(self.server_pid), browser, proc_cpu(os.getpid()), machine_busy())

    def stop(self) -> Sample:
        end = self._read()
        return Sample(*(b - a for a, b in zip(self.start, end, strict=True)))


class Tabs:
    """Open browser tabs, and the reruns they asked the server for, read off their WebSockets (BackMsg
    rerun_script; a fragment's timer sends one with its fragment id). Playwright delivers those events only while
    it is called, so waiting goes through `pause`."""

    def __init__(self, browser: Browser):
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.pages: list[Page] = []
        self.full = 0
        self.fragment = 0

    def open(self, url: str) -> Page:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        def sent(payload: str | bytes) -> None:
            if isinstance(payload, bytes):
                msg = BackMsg.FromString(payload)
                if msg.WhichOneof("type") == "rerun_script":
                    if msg.rerun_script.fragment_id:
                        self.fragment += 1
                    else:
                        self.full += 1

        context = self.browser.new_context(viewport={"width": 1440, "height": 1000})  # one per operator: a
        self.contexts.append(context)  # single context left the 17th polling tab blank on this machine
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framesent", sent))
        page.goto(url)
        self.pages.append(page)
        return page

    def reruns(self) -> int:
        return self.full + self.fragment

    def pause(self, seconds: float) -> None:
        if self.pages:
            self.pages[0].wait_for_timeout(seconds * 1000)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts, self.pages = [], []


class Server:
    def __init__(self, root: Path, db_url: str, fake: FakeAnthropic, concurrency: int, log: Path):
        port = _free_port()
        env = {**os.environ, "TRIAGE_DATABASE_URL": db_url, "ANTHROPIC_API_KEY": fake.api_key,
               "ANTHROPIC_BASE_URL": fake.base_url, "TRIAGE_CONCURRENCY": str(concurrency),
               "PYTHONPATH": str(root)}
        self.log = open(log, "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(root / "dashboard" / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=1).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("streamlit did not start:\n" + log.read_text()[-3000:])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]  # (host, port) for AF_INET
        return port


def wait_for_script(page: Page, timeout: float = 120_000) -> None:
    page.wait_for_timeout(300)
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(state="attached",
                                                                                         timeout=timeout)


def sample_texts() -> list[str]:
    lines = (ROOT / "triage" / "samples" / "tickets.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def held_run(db: Database, texts: list[str], source: str) -> int:
    """A run whose tickets the worker cannot take yet: claimed by the benchmark in the same transaction."""
    with db.transaction() as s:
        run_id = runs.create_run(s, started_by="bench", source=source, mode="auto", threshold=0.7)
        queue.import_tickets(s, [(None, t) for t in texts], source=source, run_id=run_id)
        queue.claim_pending(s, HOLD, len(texts), run_id)
    return run_id


def release_and_time(db: Database, run_id: int, server_pid: int, tabs: Tabs,
                     timeout: float = 900) -> tuple[float, Sample]:
    """Hand the held tickets to the worker; wait until none is pending. Returns (tickets/s, CPU over the run).

    Throughput is the run's tickets over the span from the first model call to the last outcome, both stored by
    the server, so neither the worker's pickup delay nor this polling counts."""
    meter = Meter(server_pid)
    with db.transaction() as s:
        queue.release_claims(s, HOLD)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tabs.pause(0.5)
        with db.read() as s:
            if not runs.run_state_counts(s, run_id).get("pending"):
                break
    else:
        raise SystemExit(f"run {run_id} did not finish in {timeout:.0f} s")
    sample = meter.stop()
    with db.read() as s:
        first = s.scalar(select(func.min(ModelCall.created_at)).where(ModelCall.run_id == run_id))
        last = s.scalar(select(func.max(Ticket.updated_at)).where(Ticket.run_id == run_id))
        n = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.run_id == run_id))
    assert first is not None and last is not None and n is not None  # the run had calls and tickets
    return n / (last - first).total_seconds(), sample


def measure(server: Server, window: float, tabs: Tabs) -> tuple[Sample, int]:
    before = tabs.reruns()
    meter = Meter(server.proc.pid)
    tabs.pause(window)
    return meter.stop(), tabs.reruns() - before


def classify_in_new_tabs(tabs: Tabs, url: str, n: int) -> None:
    """n more tabs, each pastes 3 tickets of its own, presses Classify and waits until they are done."""
    from playwright.sync_api import expect

    first = len(tabs.pages)
    pages = [tabs.open(url) for _ in range(n)]
    for i, page in enumerate(pages, start=first):
        wait_for_script(page)
        box = page.get_by_label("Tickets", exact=True)
        box.fill(f"Tab {i}: I was charged twice, please refund invoice {i}\nTab {i}: the app crashes with error {i}\n"
                 f"Tab {i}: please add dark mode, idea {i}")
        box.press("Control+Enter")
    for page in pages:
        wait_for_script(page)
        page.get_by_role("button", name="Classify", exact=True).click()
    for page in pages:
        expect(page.get_by_text(re.compile(r"3 of 3 done"))).to_be_visible(timeout=120_000)


def run_texts(texts: list[str], n: int, tag: str) -> list[str]:
    return [f"{texts[i % len(texts)]} ({tag} {i})" for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tabs", type=int, default=20, help="tabs watching at once (N)")
    ap.add_argument("--tickets", type=int, default=1000, help="tickets in the active run")
    ap.add_argument("--delay", type=float, default=0.3, help="the fake API's answer time, seconds")
    ap.add_argument("--concurrency", type=int, default=8, help="the dashboard worker's concurrency (its default)")
    ap.add_argument("--window", type=float, default=30.0, help="seconds each idle measurement lasts")
    ap.add_argument("--phases", default="idle,active", help="idle, active or both")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose dashboard to run (to compare versions)")
    args = ap.parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):  # always, run as a script
        sys.stdout.reconfigure(line_buffering=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("needs Debian's chromium (scripts/test-services installs it)")
    from playwright.sync_api import sync_playwright

    phases = set(args.phases.split(","))
    texts = sample_texts()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; fake API answering in "
          f"{args.delay:.2f} s; worker concurrency {args.concurrency}; dashboard from {args.root}")
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic(validate=False, delay=args.delay) as fake, \
            sync_playwright() as pw:
        db_url = f"sqlite:///{Path(tmp) / 'triage.db'}"
        db = open_database(db_url)
        server = Server(args.root, db_url, fake, args.concurrency, Path(tmp) / "streamlit.log")
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        tabs = Tabs(browser)
        try:
            warm = tabs.open(server.url)  # the first script run imports pandas, plotly...; not part of any phase
            wait_for_script(warm)
            tabs.close()
            time.sleep(3)
            idle, _ = measure(server, args.window, tabs)
            base = idle.rate("server")
            print(f"\n0 tabs, nothing to do (baseline): {idle.line()}")
            if "idle" in phases:
                for n in sorted({1, args.tabs}):
                    classify_in_new_tabs(tabs, server.url, n - len(tabs.pages))
                    tabs.pause(3)  # the last results' redraw settles
                    sample, asked = measure(server, args.window, tabs)
                    per_tab = (sample.rate("server") - base) / n
                    print(f"{n} tabs, runs finished: {sample.line()}\n    = {per_tab:+.4f} of a core per tab over "
                          f"the baseline (target <= 0.01); reruns asked by the tabs: {asked} in {sample.seconds:.0f} s")
                tabs.close()
            if "active" in phases:
                alone_run = held_run(db, run_texts(texts, args.tickets, "run A"), "bench-alone")
                time.sleep(2)
                alone_rate, alone = release_and_time(db, alone_run, server.proc.pid, tabs)
                print(f"\n{args.tickets}-ticket run, 0 tabs: {alone_rate:.1f} tickets/s; {alone.line()}")
                watched_run = held_run(db, run_texts(texts, args.tickets, "run B"), "bench-watched")
                for i in range(args.tabs):  # one at a time: Chromium left some tabs blank when 20 loaded at once
                    page = tabs.open(f"{server.url}/?run={watched_run}")
                    try:  # (a page that polls is seldom "not running": wait for what it shows)
                        page.get_by_text(f"Run {watched_run}: 0 of {args.tickets} done").wait_for(timeout=300_000)
                    except Exception:
                        page.screenshot(path=str(ROOT / "test-artifacts" / f"bench-tab-{i}.png"))
                        raise
                tabs.pause(3)
                lower_priority(descendants(os.getpid()), keep=server.proc.pid)
                before, full_before = tabs.reruns(), tabs.full
                watched_rate, watched = release_and_time(db, watched_run, server.proc.pid, tabs)
                asked, full = tabs.reruns() - before, tabs.full - full_before
                extra = (watched.server - alone.server) / watched.seconds
                print(f"{args.tickets}-ticket run, {args.tabs} tabs watching: {watched_rate:.1f} tickets/s = "
                      f"{watched_rate / alone_rate:.3f} of the no-tab throughput (target >= 0.9); {watched.line()}\n"
                      f"    the tabs' share: {extra:+.3f} of a core together (server CPU beyond the no-tab run's, over"
                      f" this run's time; target <= 0.5), {extra / args.tabs:+.4f} per tab; reruns asked: {asked} "
                      f"({asked / watched.seconds:.1f}/s; {full} of them full page runs)")
                tabs.pause(3)
                after, asked = measure(server, min(args.window, 10), tabs)
                print(f"after that run, {args.tabs} tabs still open: {after.line()}; reruns asked: {asked}")
                tabs.close()
        finally:
            tabs.close()
            browser.close()
            server.stop()
            db.dispose()
        log = (Path(tmp) / "streamlit.log").read_text()
        if "Traceback" in log:
            print("\nthe server logged a traceback:\n" + log[-3000:])


if __name__ == "__main__":
    main()
