"""Several tickets per call from the dashboard: the Classify page's size travels with the run to the background
worker, Settings saves the default, Spend counts API requests apart from tickets, Quality compares group sizes."""

import time

import pytest
from sqlalchemy import select

from db.engine import Database
from db.migrate import open_database
from db.models import Run, Ticket
from tests.dashboard.conftest import make_app
from tests.dashboard.test_pages import texts
from tests.support.actors import LEAD, op
from tests.support.fake_anthropic import FakeAnthropic, keyword_label
from triage import review, taxonomy
from triage import settings as config
from triage.quality import groups as quality_groups
from triage.settings import Settings
from triage.work import runs, services

TAX = taxonomy.default()
TICKETS = ["I was charged twice on my invoice", "I cannot log in to my account", "the app shows an error on start",
           "I wish you had dark mode", "my invoice is wrong", "password reset never arrives"]


def test_the_classify_page_sends_the_chosen_number_of_tickets_per_call(app_env: str, fake: FakeAnthropic,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    at = make_app()
    at.number_input(key="per_call").set_value(3).run()
    at.text_area(key="pasted").set_value("\n".join(TICKETS)).run()
    at.button(key="classify").click().run()
    db = open_database(app_env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with db.read() as s:
            states = s.execute(select(Ticket.text, Ticket.status, Ticket.category)).all()
        if len(states) == len(TICKETS) and all(st_ != "pending" for _, st_, _ in states):
            break
        time.sleep(0.3)
    with db.read() as s:
        assert s.scalars(select(Run.per_call)).all() == [3]
    assert {t: c for t, _, c in states} == {t: keyword_label(t)[0] for t in TICKETS}
    sizes = [b["body"]["messages"][0]["content"].count('<ticket id="') for b in fake.requests]
    assert sorted(sizes) == [3, 3]
    assert not at.exception
    db.dispose()


def test_settings_saves_tickets_per_call(seeded: tuple[Database, dict[str, int]],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = make_app("settings")
    boxes = {n.label: n for n in at.number_input}
    boxes["Tickets per call"].set_value(20)
    boxes["Tickets per Sonnet call (0 = the same)"].set_value(5)
    next(b for b in at.button if b.label == "Save routing").click().run()
    assert any("Saved" in m.value for m in at.success), [e.value for e in at.error]
    settings, _ = config.effective(db)
    assert (settings.per_call, settings.per_call_sonnet) == (20, 5)


def test_the_spend_page_counts_requests_apart_from_tickets(app_env: str, fake: FakeAnthropic) -> None:
    db = open_database(app_env)
    router = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url, per_call=3), TAX,
                                   mode="haiku", db=db)
    imp = runs.start_run(db, [(None, t) for t in TICKETS], source="t", actor=LEAD, mode="haiku")
    assert imp.run_id is not None
    services.classify_run(db, router, imp.run_id, actor=LEAD, concurrency=1)
    at = make_app("spend")
    table = next(d for d in at.dataframe if "API requests" in d.value.columns)
    row = table.value.iloc[0]
    assert (row["API requests"], row["ticket calls"], row["tickets per request"]) == (2, 6, 3.0)
    assert "instructions are paid once per request" in texts(at)
    db.dispose()


def test_the_quality_page_compares_accuracy_by_group_size(app_env: str, fake: FakeAnthropic) -> None:
    db = open_database(app_env)
    alone = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url), TAX, mode="haiku", db=db)
    grouped = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url, per_call=3), TAX,
                                    mode="haiku", db=db)
    first = runs.start_run(db, [(None, t) for t in TICKETS[:3]], source="t", actor=LEAD, mode="haiku")
    assert first.run_id is not None
    services.classify_run(db, alone, first.run_id, actor=LEAD, concurrency=1)
    with db.read() as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket).where(Ticket.id.in_(first.ticket_ids)))}
    for i, tid in enumerate(first.ticket_ids):
        review.correct(db, tid, keyword_label(TICKETS[i])[0], actor=op("olga"), expected_version=versions[tid],
                       taxonomy=TAX)
    # no request about several tickets yet: the page skips the section's read of the labelled calls
    assert quality_groups.by_group_size(db, only_if_grouped=True) == []
    assert [x.band for x in quality_groups.by_group_size(db)] == ["1"]
    assert not any("tickets per request" in d.value.columns for d in make_app("quality").dataframe)
    second = runs.start_run(db, [(None, t) for t in TICKETS[3:]], source="t", actor=LEAD, mode="haiku")
    assert second.run_id is not None
    services.classify_run(db, grouped, second.run_id, actor=LEAD, concurrency=1)
    ids = first.ticket_ids + second.ticket_ids
    with db.read() as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
    for i, tid in enumerate(ids):  # the operator agrees with all but the last grouped answer
        label = "billing" if i == len(ids) - 1 else keyword_label(TICKETS[i])[0]
        review.correct(db, tid, label, actor=op("olga"), expected_version=versions[tid], taxonomy=TAX)
    at = make_app("quality")
    table = next(d for d in at.dataframe if "tickets per request" in d.value.columns)
    rows = {r["tickets per request"]: r for r in table.value.to_dict("records")}
    assert quality_groups.by_group_size(db, only_if_grouped=True) == quality_groups.by_group_size(db)
    assert rows["1"]["tickets"] == 3 and rows["1"]["right"] == "100%"
    assert rows["2-5"]["tickets"] == 3 and rows["2-5"]["right"] == "67%"
    db.dispose()


def test_the_economy_route_sends_the_chosen_number_of_tickets_per_batch_request(
        app_env: str, fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    from triage.work import classify

    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    fake.batch_polls = 1_000  # stays "in progress" until the test ends it
    at = make_app()
    at.text_area(key="pasted").set_value("\n".join(TICKETS[:4])).run()
    at.checkbox(key="batch").check().run()
    at.number_input(key="per_call").set_value(4).run()
    at.button(key="classify").click().run()
    deadline = time.monotonic() + 30
    while not fake.batches and time.monotonic() < deadline:  # the background worker submits it
        time.sleep(0.2)
    (batch,) = fake.batches.values()
    assert [r["params"]["messages"][0]["content"].count('<ticket id="') for r in batch["requests"]] == [4]
    batch["polls_left"] = 0
    db = open_database(app_env)
    assert [n.state for n in classify.collect_open(db, Settings.from_env(), actor=LEAD)] == ["collected"]
    with db.read() as s:
        got = {t: (st_, c) for t, st_, c in s.execute(select(Ticket.text, Ticket.status, Ticket.category))}
    assert got == {t: ("classified", keyword_label(t)[0]) for t in TICKETS[:4]}
    db.dispose()
