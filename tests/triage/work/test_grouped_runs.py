"""Several tickets per request, end to end: the real SDK over HTTP to the fake Messages API (which answers
multi-ticket requests, shuffles, drops, repeats, invents ids, refuses and cuts off), a real SQLite database.

The checks an operator relies on: no ticket lost, each ticket's label is the one its own text earns (never a
neighbour's), and the per-ticket costs add up to what the API billed to the last pico-dollar."""

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import CallAttempt, ModelCall, SpendDaily, Ticket
from db.queue import Imported
from tests.support.actors import LEAD
from tests.support.fake_anthropic import Drop, Error, FakeAnthropic, keyword_label
from triage import taxonomy
from triage.domain import Usage, to_pico
from triage.providers.anthropic_provider import AnthropicProvider
from triage.routing.router import Router
from triage.settings import Settings
from triage.spend.pricing import PriceTable
from triage.work import pipeline, runs, services

TAX = taxonomy.default()
SUBJECTS = {  # one keyword each: the fake model is sure (0.93) and its label is known from the text alone
    "billing": "I was charged twice on my invoice",
    "account": "I cannot log in to my account",
    "technical": "the app shows an error on start",
    "product_feedback": "I wish you had dark mode",
}
UNSURE = "refund the charge, the app shows an error"  # two subjects: tier 1 is unsure (0.55), tier 2 decides


def texts(n: int, seed: int = 1, unsure_every: int = 0) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        subject = UNSURE if unsure_every and i % unsure_every == 0 else SUBJECTS[rnd.choice(list(SUBJECTS))]
        out.append(f"case {i}: {subject} ({'x' * rnd.randint(0, 80)})")
    return out


def billed_pico(fake: FakeAnthropic) -> int:
    prices, now = PriceTable.default(), datetime.now(UTC)
    return sum(to_pico(prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"],
                                                     service_tier=u["service_tier"]), now)) for u in fake.usage_log)


def router_for(fake: FakeAnthropic, db: Database, per_call: int, per_call_sonnet: int | None = None, mode: str = "auto",
               **kw: Any) -> Router:
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, per_call=per_call,
                        per_call_sonnet=per_call_sonnet, **kw)
    return services.build_router(settings, TAX, mode=mode, db=db)


def tier(router: Router, n: int) -> AnthropicProvider:
    """The router's tier `n`, as services.build_router made it (the real provider)."""
    provider = router.tier1 if n == 1 else router.tier2
    assert isinstance(provider, AnthropicProvider)
    return provider


def run(fake: FakeAnthropic, db: Database, items: list[str], per_call: int, concurrency: int = 3, **kw: Any
        ) -> tuple[Imported, pipeline.RunReport]:
    imp = runs.start_run(db, [(None, t) for t in items], source="test", actor=LEAD)
    assert imp.run_id is not None
    router = router_for(fake, db, per_call, **kw)
    report = services.classify_run(db, router, imp.run_id, actor=LEAD, concurrency=concurrency)
    return imp, report


def labels(db: Database, imp: Imported) -> dict[str, tuple[str, str | None]]:
    with db.read() as s:
        return {t.text: (t.status, t.category) for t in s.scalars(select(Ticket).where(Ticket.id.in_(imp.ticket_ids)))}


def recorded_pico(db: Database) -> int:
    with db.read() as s:
        return int(s.execute(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))).scalar_one())


def messages_bodies(fake: FakeAnthropic) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests if r["path"] == "/v1/messages" and r.get("status") == 200]


def assert_each_ticket_has_its_own_label(db: Database, imp: Imported, items: list[str]) -> None:
    got = labels(db, imp)
    assert len(got) == len(items)
    for text in items:
        status, category = got[text]
        assert status in ("classified", "escalated"), (text, status)
        assert category == keyword_label(text)[0], text


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_under_random_faults_every_ticket_gets_its_own_label_and_the_money_adds_up(fake: FakeAnthropic, db: Database,
                                                                                   seed: int) -> None:
    fake.group_chaos = random.Random(seed)  # every multi-ticket answer: clean, or broken one of ten ways
    fake.push(Error(500), Error(429, "rate_limit_error", "slow down", headers={"retry-after": "0"}), Drop())
    items = texts(45, seed, unsure_every=6)
    items[3] += " [[skip]]"  # the model leaves this one out
    items[10] += " [[twice]]"  # names this one twice, the second time with another label
    items[17] += " [[bad]]"  # answers it without a confidence
    imp, report = run(fake, db, items, per_call=7)
    assert report.stopped is None
    assert_each_ticket_has_its_own_label(db, imp, items)
    assert recorded_pico(db) == billed_pico(fake)  # the sum over tickets is what the API billed
    with db.read() as s:
        rows = s.scalars(select(ModelCall)).all()
        requests = s.execute(select(func.sum(SpendDaily.requests))).scalar_one()
        calls = s.execute(select(func.sum(SpendDaily.calls))).scalar_one()
        lost = s.scalars(select(CallAttempt)).all()  # every reservation settled but the dropped request's: sent,
        assert {a.state for a in lost} == {"lost"} and 1 <= len(lost) <= 7  # so probably billed, one per ticket
    by_request: dict[str | None, list[ModelCall]] = {}
    for r in rows:
        by_request.setdefault(r.request_id, []).append(r)
    assert len(by_request) == len(fake.usage_log) == requests < calls == len(rows)
    for group in by_request.values():  # one row per ticket of the request, ids 1..N
        assert sorted(r.group_position for r in group) == list(range(1, group[0].group_size + 1))
    assert any(r.group_size > 1 for r in rows) and any(r.tier == 2 and r.group_size > 1 for r in rows)


def test_skipped_repeated_and_malformed_tickets_are_asked_again_alone(fake: FakeAnthropic, db: Database) -> None:
    items = [f"{SUBJECTS['billing']} {i}" for i in range(3)] + [f"{SUBJECTS['account']} [[skip]]",
                                                                f"{SUBJECTS['technical']} [[twice]]",
                                                                f"{SUBJECTS['product_feedback']} [[bad]]"]
    imp, _ = run(fake, db, items, per_call=6, concurrency=1, mode="haiku")
    assert_each_ticket_has_its_own_label(db, imp, items)
    bodies = messages_bodies(fake)
    assert len(bodies) == 4  # the group, then the three it did not answer cleanly, each alone
    alone = [b["messages"][0]["content"] for b in bodies[1:]]
    assert all(c.startswith("<ticket>\n") for c in alone)
    assert sorted(alone) == sorted(f"<ticket>\n{t}\n</ticket>" for t in items[3:])
    with db.read() as s:
        problems = [p for p in s.scalars(select(ModelCall.error).where(ModelCall.error_kind == "unanswered"))
                    if p is not None]
    assert sorted(p.split(": ", 1)[1] for p in problems) == sorted([
        "the answer skipped this ticket; asked again", "the answer named this ticket 2 times; asked again",
        "this ticket's answer was malformed; asked again"])
    assert recorded_pico(db) == billed_pico(fake)


def test_invented_ids_are_ignored_never_given_to_a_ticket(fake: FakeAnthropic, db: Database) -> None:
    fake.group_faults.extend(["invent"])
    items = [SUBJECTS[c] + f" #{i}" for i, c in enumerate(["billing", "account", "technical", "billing"])]
    imp, _ = run(fake, db, items, per_call=4, concurrency=1, mode="haiku")
    assert_each_ticket_has_its_own_label(db, imp, items)
    assert len(messages_bodies(fake)) == 1  # the stray answers were dropped; every sent id had a clean one


@pytest.mark.parametrize("fault", ["refuse", "truncate", "unreadable"])
def test_an_unusable_answer_asks_the_group_once_more_then_each_ticket_alone(fake: FakeAnthropic, db: Database,
                                                                            fault: str) -> None:
    fake.group_faults.extend([fault, fault])
    items = [SUBJECTS[c] for c in ("billing", "account", "technical")]
    imp, _ = run(fake, db, items, per_call=3, concurrency=1, mode="haiku")
    assert_each_ticket_has_its_own_label(db, imp, items)
    shapes = ["group" if 'id="' in b["messages"][0]["content"] else "alone" for b in messages_bodies(fake)]
    assert shapes == ["group", "group", "alone", "alone", "alone"]
    assert recorded_pico(db) == billed_pico(fake)  # the two unusable answers were billed: on the books too


def test_an_unusable_answer_then_a_clean_one_needs_no_single_requests(fake: FakeAnthropic, db: Database) -> None:
    fake.group_faults.extend(["truncate"])
    items = [SUBJECTS[c] for c in ("billing", "account")]
    imp, _ = run(fake, db, items, per_call=2, concurrency=1, mode="haiku")
    assert_each_ticket_has_its_own_label(db, imp, items)
    assert len(messages_bodies(fake)) == 2


def test_server_errors_rate_limits_and_dropped_connections_are_retried_as_one_request(fake: FakeAnthropic,
                                                                                      db: Database) -> None:
    fake.push(Error(500), Error(429, "rate_limit_error", "slow down", headers={"retry-after": "0"}), Drop(),
              Error(529))
    items = texts(10, 4)
    imp, _ = run(fake, db, items, per_call=10, concurrency=1, mode="haiku")
    assert_each_ticket_has_its_own_label(db, imp, items)
    assert [r.get("status") for r in fake.requests] == [500, 429, "dropped", 529, 200]
    assert recorded_pico(db) == billed_pico(fake)


def test_a_request_that_never_gets_an_answer_leaves_its_tickets_failed_and_retryable(fake: FakeAnthropic,
                                                                                     db: Database) -> None:
    fake.push(*[Error(500)] * 3)
    items = texts(4, 5)
    imp, report = run(fake, db, items, per_call=4, concurrency=1, mode="haiku", max_attempts=3)
    assert {s for s, _ in labels(db, imp).values()} == {"failed"}
    retry = services.retry_failed(db, router_for(fake, db, 4, mode="haiku"), actor=LEAD)
    assert retry is not None and retry.states == {"classified": 4}
    assert_each_ticket_has_its_own_label(db, imp, items)


def test_one_request_per_ticket_is_todays_request_byte_for_byte(fake: FakeAnthropic, db: Database) -> None:
    items = texts(3, 6)
    run(fake, db, items, per_call=1, concurrency=1, mode="haiku")
    at_one = [r["raw"] for r in fake.requests]
    provider = tier(router_for(fake, db, 1), 1)
    assert [r["body"] for r in fake.requests] == [provider.request_body(t, TAX) for t in items]
    fake.requests.clear()  # the same tickets through a router that knows nothing of grouping (as before)
    imp = runs.start_run(db, [(None, t) for t in items], source="again", actor=LEAD, reclassify=True)
    assert imp.run_id is not None
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url)
    router = services.build_router(settings, TAX, mode="haiku", db=db)
    del router.per_call, router.per_call_sonnet  # as built before this feature: no such attributes
    type(router).per_call = type(router).per_call_sonnet = 1  # class defaults stand in
    try:
        services.classify_run(db, router, imp.run_id, actor=LEAD, concurrency=1)
    finally:  # mypy knows them only as instance attributes; these are the class defaults set above
        del type(router).per_call, type(router).per_call_sonnet  # type: ignore[misc]
    assert [r["raw"] for r in fake.requests] == at_one
    # a group of one (the last ticket of a run, or a ticket too long to share) is the same single request
    fake.requests.clear()
    run(fake, db, ["a lonely ticket about my invoice"], per_call=20, concurrency=1, mode="haiku")
    assert [r["body"] for r in fake.requests] == [provider.request_body("a lonely ticket about my invoice", TAX)]


def test_a_group_request_shares_the_static_prefix_and_scales_its_output_budget(fake: FakeAnthropic,
                                                                               db: Database) -> None:
    items = [SUBJECTS["billing"], SUBJECTS["account"], SUBJECTS["technical"]]  # (a text spelling tags goes alone)
    run(fake, db, items, per_call=3, concurrency=1, mode="haiku")
    body = messages_bodies(fake)[0]
    single = tier(router_for(fake, db, 1), 1).request_body("x", TAX)
    assert body["system"] == single["system"] and body["model"] == single["model"]
    assert body["max_tokens"] == 3 * single["max_tokens"]
    content = body["messages"][0]["content"]
    assert content.count('<ticket id="') == 3 and content.count("</ticket>") == 3
    item = body["output_config"]["format"]["schema"]["properties"]["answers"]["items"]
    assert item["properties"]["category"]["enum"] == TAX.names and item["required"][0] == "id"
    assert "Judge each ticket on its own" in content


def test_unsure_tickets_go_to_tier_2_grouped_with_their_own_size(fake: FakeAnthropic, db: Database) -> None:
    items = [UNSURE + f" #{i}" for i in range(6)]
    imp, _ = run(fake, db, items, per_call=6, per_call_sonnet=3, concurrency=1)
    models = [(b["model"], b["messages"][0]["content"].count('<ticket id="')) for b in messages_bodies(fake)]
    assert models == [("claude-haiku-5-5", 6), ("claude-sonnet-5-5", 3), ("claude-sonnet-5-5", 3)]
    assert {s for s, _ in labels(db, imp).values()} == {"escalated"}
    assert_each_ticket_has_its_own_label(db, imp, items)


def test_escalate_on_demand_in_groups(fake: FakeAnthropic, db: Database) -> None:
    items = texts(5, 7)
    imp, _ = run(fake, db, items, per_call=5, concurrency=1, mode="haiku")
    router = router_for(fake, db, 1, per_call_sonnet=5)
    report = services.escalate(db, router, imp.ticket_ids, actor=LEAD)
    assert report.states == {} or report.ended == {"escalated": 5}
    sonnet = [b for b in messages_bodies(fake) if "sonnet" in b["model"]]
    assert len(sonnet) == 1 and sonnet[0]["messages"][0]["content"].count('<ticket id="') == 5
    assert_each_ticket_has_its_own_label(db, imp, items)


def test_the_budget_reserves_the_whole_request_and_a_stopped_group_is_an_attempt_on_each_ticket(fake: FakeAnthropic,
                                                                                                db: Database) -> None:
    items = [SUBJECTS["billing"] + " [[slow=3]]"] + [SUBJECTS["account"]] * 0 + [f"{SUBJECTS['account']} {i}"
                                                                                for i in range(4)]
    imp = runs.start_run(db, [(None, t) for t in items], source="test", actor=LEAD)
    router = router_for(fake, db, 5, mode="haiku")
    halt = pipeline.Halt(grace=0.2)

    async def go() -> pipeline.RunReport:
        task = asyncio.ensure_future(pipeline.process_queue(db, router, run_id=imp.run_id, halt=halt))
        for _ in range(100):
            await asyncio.sleep(0.05)
            with db.read() as s:
                if s.scalar(select(func.count()).select_from(CallAttempt)):
                    break
        halt.request("stopped by test")
        try:
            return await task
        finally:
            await router.aclose()

    report = asyncio.run(go())
    assert report.cut_off == 5
    with db.read() as s:
        attempts = s.scalars(select(CallAttempt)).all()
        assert Counter(a.ticket_id for a in attempts) == Counter(imp.ticket_ids)
        assert {a.state for a in attempts} == {"lost"}
        worst = tier(router, 1).group_worst_case_cost(items, TAX)
        assert sum(a.estimated_pico for a in attempts) == to_pico(worst)
    assert {s for s, _ in labels(db, imp).values()} == {"pending"}


@pytest.mark.parametrize("cap_of", ["all 20", "the first 10", "3 alone"])
def test_a_cap_below_the_whole_request_sends_smaller_requests_that_fit_and_never_crosses_it(fake: FakeAnthropic,
                                                                                            db: Database,
                                                                                            cap_of: str) -> None:
    items = texts(20, 8)
    tier1 = tier(router_for(fake, db, 20, mode="haiku"), 1)
    cap = {"all 20": tier1.group_worst_case_cost(items, TAX) - Decimal("0.000001"),
           "the first 10": tier1.group_worst_case_cost(items[:10], TAX) - Decimal("0.000001"),
           # one ticket's worst case and about three real calls (two tickets' worst case already fits more)
           "3 alone": Decimal("1.5") * max(tier1.worst_case_cost(t, TAX) for t in items)}[cap_of]
    imp, report = run(fake, db, items, per_call=20, concurrency=1, mode="haiku", monthly_budget_usd=float(cap))
    sizes = [b["messages"][0]["content"].count('<ticket id="') or 1 for b in messages_bodies(fake)]
    assert sizes and max(sizes) < 20  # the whole request did not fit: halves (and less) were asked instead
    assert recorded_pico(db) <= to_pico(cap) and recorded_pico(db) == billed_pico(fake)
    got = labels(db, imp)  # every ticket answered before the cap stopped the run is settled, none guessed
    done = [t for t, (status, _) in got.items() if status != "pending"]
    assert len(done) == sum(sizes) and all(got[t][1] == keyword_label(t)[0] for t in done)
    assert report.processed == len(done)
    assert report.stop_kind == ("budget" if cap_of == "3 alone" else None)  # the looser caps let all 20 through
    with db.read() as s:  # the rest wait, saying why
        waiting = s.scalars(select(Ticket).where(Ticket.status == "pending")).all()
        assert len(waiting) == 20 - len(done) and all("budget" in (t.status_reason or "") for t in waiting)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(CallAttempt).where(CallAttempt.state == "open")) == 0


def test_a_cap_below_one_ticket_alone_stops_before_sending(fake: FakeAnthropic, db: Database) -> None:
    items = texts(20, 8)
    tier1 = tier(router_for(fake, db, 1, mode="haiku"), 1)
    cheapest = min(tier1.worst_case_cost(t, TAX) for t in items)
    imp, report = run(fake, db, items, per_call=20, concurrency=1, mode="haiku",
                      monthly_budget_usd=float(cheapest - Decimal("0.000001")))
    assert report.stop_kind == "budget" and fake.requests == []
    assert {s for s, _ in labels(db, imp).values()} == {"pending"}


def test_a_cap_that_stops_the_escalations_settles_the_sure_tickets_and_leaves_the_unsure_waiting(fake: FakeAnthropic,
                                                                                                 db: Database) -> None:
    items = texts(6, 3, unsure_every=3)  # tickets 0 and 3 are unsure: Haiku's answer alone does not settle them
    router = router_for(fake, db, 6)
    haiku = tier(router, 1).group_worst_case_cost(items, TAX)
    assert min(tier(router, 2).worst_case_cost(t, TAX) for t in items) > haiku  # Sonnet alone is dearer than that
    imp, report = run(fake, db, items, per_call=6, concurrency=1, monthly_budget_usd=float(haiku))
    assert report.stop_kind == "budget"
    assert [b["model"] for b in messages_bodies(fake)] == ["claude-haiku-5-5"]  # no Sonnet request went
    got = labels(db, imp)
    for i, text in enumerate(items):
        status, category = got[text]
        if i % 3 == 0:  # waits for Sonnet, with its Haiku answer kept (the next pass does not ask Haiku again)
            assert status == "pending"
        else:
            assert (status, category) == ("classified", keyword_label(text)[0])
    assert recorded_pico(db) == billed_pico(fake) <= to_pico(haiku)
