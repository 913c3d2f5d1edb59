"""Every request path passes the gate (triage.routing.gate), end to end: the real SDK over HTTP to the fake Messages
API (which records every body) and a real SQLite database. The gate's `prepare` is wrapped to leave a mark on what
it prepared; every ticket and example block of every body must carry it (a path that built a body from a text the
gate never prepared fails here), no personal value reaches the API, and every request's worst case was reserved on
the prepared text and settled (live) or held for the batch (Message Batches)."""

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import ledger
from db.engine import Database
from db.models import CallAttempt, ModelCall
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic, keyword_label
from tests.triage.test_masking_requests import TAX, assert_nothing_personal_was_sent, labelled, tickets
from triage.cli import main
from triage.domain import CallFor
from triage.routing import gate, redact
from triage.routing.provider import GroupProvider, Provider
from triage.settings import Settings
from triage.spend import budget
from triage.taxonomy import Taxonomy
from triage.work import runs, services

MARK = " zzgatedzz"
BLOCK = re.compile(r"<(ticket|example)\b[^>]*>\n(.*?)\n</\1>", re.S)


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The gate's prepare leaves MARK; the guard notes every text it reserves a worst case for; the ledger notes
    each reservation's kind."""
    real = gate.prepare
    seen: dict[str, list[str]] = {"reserved_texts": [], "kinds": []}
    monkeypatch.setattr(gate, "prepare", lambda text, policy=redact.DEFAULT_POLICY: real(text, policy) + MARK)

    admit, admit_group, reserve_batch = (budget.BudgetGuard.admit, budget.BudgetGuard.admit_group,
                                         budget.BudgetGuard.reserve_batch)

    async def spy_admit(self: budget.BudgetGuard, provider: Provider, text: str, taxonomy: Taxonomy,
                        ticket: CallFor | None = None) -> int:
        seen["reserved_texts"].append(text)
        return await admit(self, provider, text, taxonomy, ticket)

    async def spy_admit_group(self: budget.BudgetGuard, provider: GroupProvider, texts: Sequence[str],
                              taxonomy: Taxonomy, tickets: Sequence[CallFor]) -> list[int]:
        seen["reserved_texts"].extend(texts)
        return await admit_group(self, provider, texts, taxonomy, tickets)

    async def spy_reserve_batch(self: budget.BudgetGuard, run_id: int, provider: Provider, taxonomy: Taxonomy,
                                texts: Sequence[str]) -> int | None:
        seen["reserved_texts"].extend(texts)
        return await reserve_batch(self, run_id, provider, taxonomy, texts)

    reserve = ledger.reserve

    def spy_reserve(s: Session, **kw: Any) -> int:
        seen["kinds"].append(kw["kind"])
        return reserve(s, **kw)

    monkeypatch.setattr(budget.BudgetGuard, "admit", spy_admit)
    monkeypatch.setattr(budget.BudgetGuard, "admit_group", spy_admit_group)
    monkeypatch.setattr(budget.BudgetGuard, "reserve_batch", spy_reserve_batch)
    monkeypatch.setattr(ledger, "reserve", spy_reserve)
    return seen


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def assert_every_block_was_prepared(bodies: Iterable[dict[str, Any]]) -> int:
    """Each body carries at least one ticket block; every ticket and example block ends with the gate's mark."""
    blocks = 0
    for body in bodies:
        found = [(kind, text) for s in strings(body) for kind, text in BLOCK.findall(s)]
        assert any(kind == "ticket" for kind, _ in found), body
        for kind, text in found:
            assert text.endswith(MARK), (kind, text)
        blocks += len(found)
    return blocks


def assert_reserved_prepared_and_settled(db: Database, seen: dict[str, list[str]]) -> None:
    assert seen["reserved_texts"] and all(t.endswith(MARK) for t in seen["reserved_texts"])
    with db.read() as s:
        paid_calls = s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.tier >= 1))
        still_open = s.scalar(select(func.count()).select_from(CallAttempt).where(
            CallAttempt.kind == "call", CallAttempt.state == ledger.OPEN))
    assert seen["kinds"].count("call") == paid_calls  # one reservation per recorded call, no call unreserved
    assert still_open == 0  # each settled in the transaction that recorded its call


def live_bodies(fake: FakeAnthropic) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests if r["body"] and r["path"] == "/v1/messages"]


@pytest.mark.parametrize("per_call", [1, 3], ids=["one-ticket-with-fewshot", "grouped"])
def test_live_paths_and_escalations_pass_the_gate(fake: FakeAnthropic, db: Database, spied: dict[str, list[str]],
                                                  per_call: int) -> None:
    labelled(db)
    items = tickets(8)
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, fewshot_k=2, per_call=per_call,
                        per_call_sonnet=per_call)
    router = services.build_router(settings, TAX, db=db)
    imp = runs.start_run(db, [(None, t) for t in items], source="test", actor=LEAD)
    assert imp.run_id is not None
    assert services.classify_run(db, router, imp.run_id, actor=LEAD, concurrency=2).stopped is None
    services.escalate(db, services.build_router(settings, TAX, db=db), imp.ticket_ids[:4], actor=LEAD, again=True)
    bodies = live_bodies(fake)
    assert sum("sonnet" in b["model"] for b in bodies) >= 2  # unsure tickets and the escalation on demand
    if per_call == 1:
        assert any("<example" in json.dumps(b) for b in bodies)  # few-shot examples went through prepare too
    else:
        assert any('<ticket id="3">' in str(b) for b in bodies)
    assert assert_every_block_was_prepared(bodies) >= len(items)
    assert_nothing_personal_was_sent(fake)
    assert_reserved_prepared_and_settled(db, spied)


def test_eval_passes_the_gate(env: dict[str, str], fake: FakeAnthropic, spied: dict[str, list[str]], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "gold.csv"
    with open(gold, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((text, keyword_label(text)[0]) for text in tickets(6, unsure_every=0))
    assert main(["eval", "--gold", str(gold), "--tier", "haiku", "--json"]) == 0
    capsys.readouterr()
    assert assert_every_block_was_prepared(live_bodies(fake)) == 6
    assert_nothing_personal_was_sent(fake)
    assert spied["reserved_texts"] and all(t.endswith(MARK) for t in spied["reserved_texts"])
    assert spied["kinds"].count("call") == 6


@pytest.mark.parametrize("per_call", ["1", "3"])
def test_a_message_batch_passes_the_gate(env: dict[str, str], fake: FakeAnthropic, spied: dict[str, list[str]],
                                         tmp_path: Path, per_call: str) -> None:
    src, out = tmp_path / "t.csv", tmp_path / "o.jsonl"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows((f"B-{i}", text) for i, text in enumerate(tickets(6, unsure_every=0)))
    assert main(["classify", str(src), "--batch", "--poll", "0.05", "--per-call", per_call, "--out", str(out)]) == 0
    (batch,) = fake.batches.values()
    assert assert_every_block_was_prepared([r["params"] for r in batch["requests"]]) == 6
    assert_nothing_personal_was_sent(fake)
    assert spied["kinds"][0] == "batch" and spied["kinds"].count("batch") == 1  # its worst case, once, at submit
    assert len(spied["reserved_texts"]) >= 6 and all(t.endswith(MARK) for t in spied["reserved_texts"])  # (and
    # the live tier-2 calls of unsure answers)
