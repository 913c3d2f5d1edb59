"""Scale-out on one PostgreSQL queue: a `triage classify` run and three `triage worker` processes share 1,000
tickets while the fake API answers some requests with 529 and some slowly. No ticket is claimed twice, none is
lost, and what the API billed (its usage log) equals what is recorded, to the pico-dollar."""

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.migrate import open_database
from db.models import ModelCall, Ticket
from tests.db.conftest import fresh_pg_database
from tests.support.fake_anthropic import Action, Error, FakeAnthropic, default_responder
from triage.domain import Usage, to_pico
from triage.spend.pricing import PriceTable

ROOT = Path(__file__).resolve().parents[2]
N = 1000


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_pg_database("triage_scale")


class Faults:
    """Every 8th ticket's first request is a 529, every 9th answers after 0.3 s; the rest as the default."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.answered: Counter[tuple[str, str]] = Counter()  # (model, ticket text) -> 200 answers
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Action:
        content = body["messages"][-1]["content"]
        n = int(content.split("#")[1].split(" ")[0])
        with self.lock:
            self.seen[content] += 1
            first = self.seen[content] == 1
        if n % 8 == 0 and first:
            return Error(529, "overloaded_error", "Overloaded")
        action = default_responder(body)
        if n % 9 == 0:
            action.delay = 0.3
        with self.lock:
            self.answered[(body["model"], content)] += 1
        return action


@pytest.mark.postgres
def test_three_workers_and_a_run_share_one_queue_without_double_claims_or_lost_tickets(pg_url: str,
                                                                                       tmp_path: Path) -> None:
    src = tmp_path / "tickets.txt"
    src.write_text("".join(f"ticket #{i} I was charged twice, please refund{' [[conf=0.4]]' if i % 20 == 0 else ''}\n"
                           for i in range(N)))
    faults = Faults()
    with FakeAnthropic(responder=faults) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.base_url,
               "TRIAGE_DATABASE_URL": pg_url, "PYTHONPATH": str(ROOT)}
        triage = [sys.executable, "-m", "triage.cli"]
        started = time.monotonic()
        open_database(pg_url).dispose()  # migrate once, before the processes start
        out = str(tmp_path / "o.jsonl")
        run = subprocess.Popen([*triage, "classify", str(src), "--concurrency", "8", "--out", out], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        db = open_database(pg_url)
        while time.monotonic() - started < 30:  # the run has imported its tickets: the workers join in
            with db.read() as s:
                if s.scalar(select(func.count()).select_from(Ticket)) == N:
                    break
            time.sleep(0.1)
        workers = [subprocess.Popen([*triage, "worker", "--once", "--concurrency", "8"], env=env, cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outputs = [p.communicate(timeout=300)[1] for p in [run, *workers]]  # ~40 s; generous on a loaded box
        assert [p.returncode for p in [run, *workers]] == [0, 0, 0, 0], outputs
        assert not fake.invalid
    found = [re.search(r"worker processed (\d+)", out) for out in outputs[1:]]
    assert all(found), outputs
    by_workers = [int(m.group(1)) for m in found if m]
    assert sum(by_workers) > 0, outputs  # the workers did share the run's tickets
    with db.read() as s:
        states = dict(s.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
        tier1 = Counter(s.scalars(select(ModelCall.ticket_id).where(ModelCall.tier == 1, ModelCall.outcome != "error")))
        recorded = s.scalar(select(func.sum(ModelCall.cost_pico)))
        answered_calls = s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.outcome != "error"))
    db.dispose()
    assert states == {"classified": N - N // 20, "escalated": N // 20}, states  # nothing lost or left pending
    assert len(tier1) == N and set(tier1.values()) == {1}  # each ticket claimed and answered by one process
    assert max(faults.answered.values()) == 1  # the API never answered the same ticket and model twice
    prices, now = PriceTable.default(), datetime.now(UTC)
    billed = sum(to_pico(prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"],
                                                       service_tier=u["service_tier"]), now)) for u in fake.usage_log)
    assert answered_calls == len(fake.usage_log) and recorded == billed  # billed = recorded, to the pico-dollar
