"""Every page under AppTest: empty database, populated database, a correction, a bad upload."""

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from db import audit as db_audit
from db.engine import Database
from db.models import Correction, Ticket
from tests.dashboard.conftest import make_app
from tests.support.actors import LEAD, op
from tests.support.fake_anthropic import FakeAnthropic
from triage import review, taxonomy

TAX = taxonomy.default()


def review_list(at: AppTest) -> Any:  # a pandas DataFrame (pandas has no type information here)
    """The review queue's list as the page drew it (ticket id -> label, text, machine label, status...)."""
    return next(d.value for d in at.dataframe if "machine label" in d.value.columns)


def select_review_rows(at: AppTest, positions: list[int], cell: list[object] | None = None) -> None:
    """What a browser sends when rows of the review list are ticked, or a cell clicked (AppTest cannot click the
    grid): a clicked cell opens its row beside the list, the bulk bar acts on the ticked rows."""
    at.session_state[at.session_state["list_key"]] = {"selection": {"rows": positions, "columns": [],
                                                                    "cells": [cell] if cell else []}}
    at.run()


def open_ticket(at: AppTest, ticket_id: int) -> None:
    """A click on the ticket's text in the list (nothing ticked)."""
    select_review_rows(at, [], [list(review_list(at).index).index(ticket_id), "text"])
    assert "selected" not in texts(at) and at.session_state["desk"]["focus"] == ticket_id


def pick_label(at: AppTest, label: str) -> None:
    """The panel's button for this label (what its number key does)."""
    at.button(key=f"pick_{TAX.names.index(label)}").click().run()


def classify_and_wait(at: AppTest, pasted: str, done: Callable[[AppTest], object], seconds: float = 20) -> AppTest:
    """Paste tickets, press Classify, and rerun the page until `done(at)` or time runs out (the background
    worker does the work; AppTest does not fire the page's polling fragment on its own)."""
    import time

    at.text_area(key="pasted").set_value(pasted).run()
    at.button(key="classify").click().run()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done(at):
        time.sleep(0.3)
        at.run()
    return at


def figure(at: AppTest, key: str) -> dict[str, Any]:
    """The Plotly figure (data and layout) of the chart with this key, as the browser receives it."""
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}"))
    drawn: dict[str, Any] = json.loads(chart.proto.spec)
    return drawn


def bars(fig: dict[str, Any]) -> dict[str, Any]:
    """trace name -> its y values."""
    return {t.get("name"): t["y"] for t in fig["data"]}


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "text", "info", "success", "warning", "error")
                    for e in at.get(kind) if isinstance(e, Element))


def test_classify_page_on_an_empty_database_explains_the_missing_key(app_env: str) -> None:
    at = make_app()
    assert at.title[0].value == "Classify tickets"
    assert "No Claude API key" in texts(at)
    route = at.selectbox(key="route")
    assert route.value == "local" and len(route.options) == 1  # the route the service chooses, and only it
    assert at.checkbox(key="batch").disabled  # a Message Batch needs a key and the route auto or haiku


def test_pasting_tickets_queues_them_and_reports_new_versus_known(app_env: str) -> None:
    from db.migrate import open_database

    at = make_app()
    at.text_area(key="pasted").set_value("refund please\n\napp crashes\nsecond line").run()
    assert "2 new" in texts(at)
    at.button(key="classify").click().run()
    assert not at.exception
    db = open_database(app_env)
    deadline = time.monotonic() + 60
    while True:  # without a key the background worker classifies them with the local model
        with db.read() as s:
            rows = s.execute(select(Ticket.text, Ticket.status, Ticket.category, Ticket.label_source)
                             .order_by(Ticket.id)).all()
        if all(r.status != "pending" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert [tuple(r) for r in rows] == [("refund please", "classified", "billing", "tier0"),
                                        ("app crashes\nsecond line", "classified", "technical", "tier0")]
    at.text_area(key="pasted").set_value("refund please").run()
    assert "0 new" in texts(at) and "1 already known" in texts(at)


def test_bad_uploads_show_plain_errors(app_env: str) -> None:
    at = make_app()
    at.file_uploader(key="upload").set_value(("bad.json", b"[1, 2", "application/json")).run()
    assert not at.exception
    assert any("Could not read bad.json" in e.value and "invalid JSON" in e.value for e in at.error)
    at.file_uploader(key="upload").set_value(("latin.csv", "text\ncaf\xe9".encode("latin-1"), "text/csv")).run()
    assert any("not UTF-8" in e.value for e in at.error)


def test_a_hostile_upload_previews_row_by_row_without_raising(app_env: str) -> None:
    data = b'{"text": "half an emoji \\ud83d"}\n{"text": "my invoice is wrong"}\n{oops\n{"text": {"a": 1}}\n'
    at = make_app()
    at.file_uploader(key="upload").set_value(("t.jsonl", data, "application/jsonl")).run()
    assert not at.exception and not at.error
    warning = " ".join(w.value for w in at.warning)
    assert "3 rows left out" in warning and "line 1" in warning and "line 3" in warning
    assert "1 new" in texts(at)


def test_csv_upload_lets_the_operator_pick_columns(app_env: str) -> None:
    at = make_app()
    at.file_uploader(key="upload").set_value(("t.csv", b"ref,msg,extra\n7,my invoice is wrong,x\n", "text/csv")).run()
    assert not at.error
    assert at.multiselect(key="text_columns").options == ["ref", "msg", "extra"]
    at.multiselect(key="text_columns").set_value(["msg"]).run()
    assert at.selectbox[0].value == "(none)"
    at.selectbox[0].set_value("ref").run()
    assert "1 new" in texts(at)


@pytest.mark.parametrize("page, message", [("review", "Nothing to review"), ("quality", "No operator labels yet"),
                                           ("spend", "No model calls")])
def test_friendly_empty_states(app_env: str, page: str, message: str) -> None:
    at = make_app(page)
    assert message in texts(at) and not at.get("plotly_chart")


def test_review_lists_tickets_needing_review_least_confident_first(seeded: tuple[Database, dict[str, int]]) -> None:
    _, ids = seeded
    at = make_app("review")
    frame = review_list(at)
    assert list(frame.index) == [ids["overloaded"], ids["weird one"], ids["login or refund?"]]
    assert list(frame["machine label"].fillna("-")) == ["-", "technical (Sonnet)", "account (Sonnet)"]
    assert at.session_state["desk"]["focus"] == ids["overloaded"]  # the first one is open
    # ticket text is shown as data, not rendered
    at.session_state["f_corrected"] = "all"
    at.session_state["f_reasons"] = []
    at.run()
    open_ticket(at, ids["<script>alert(1)</script> **bold** [link](http://x)"])
    shown = [h.value for h in at.html if "triage-masked" in h.value]
    assert shown and "&lt;script&gt;alert(1)&lt;/script&gt; **bold** [link](http://x)" in shown[0]
    assert "<script" not in shown[0]


def test_a_correction_is_saved_with_the_operator_and_a_conflict_is_explained(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    at = make_app("review", operator="alice")
    open_ticket(at, ids["login or refund?"])
    pick_label(at, "technical")
    at.button(key="save_next").click().run()
    assert not at.exception
    assert "Saved 1 ticket" in texts(at)
    with db.read() as s:
        c = s.scalars(select(Correction)).one()
        assert (c.ticket_id, c.previous_label, c.new_label, c.operator) == (ids["login or refund?"], "account",
                                                                             "technical", "alice")
    # bob loaded the page, then carol corrected the same ticket before bob saved
    bob = make_app("review", operator="bob")
    with db.read() as s:
        version = s.get_one(Ticket, ids["weird one"]).version
    review.correct(db, ids["weird one"], "account", actor=op("carol"), expected_version=version, taxonomy=TAX)
    open_ticket(bob, ids["weird one"])
    pick_label(bob, "billing")
    bob.button(key="save_next").click().run()
    assert any("changed by carol" in w.value and "reload" in w.value for w in bob.warning)
    with db.read() as s:
        assert s.get_one(Ticket, ids["weird one"]).category == "account"
        assert s.scalar(select(func.count()).select_from(Correction)) == 2


def test_corrections_need_an_operator_name(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    at = make_app("review", operator=None)
    pick_label(at, "billing")
    assert at.button(key="save_next").disabled and "Type your name" in at.button(key="save_next").help  # asked before
    with db.read() as s:  # nothing was saved: no correction, the ticket keeps its (missing) label
        assert s.scalar(select(func.count()).select_from(Correction)) == 0
        t = s.get_one(Ticket, ids["overloaded"])
        assert (t.category, t.corrected, t.label_source) == (None, False, None)


def test_ticket_detail_shows_calls_and_history(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    at = make_app("review")
    open_ticket(at, ids["login or refund?"])
    answers = [m for m in at.markdown if m.value.startswith("Haiku ")]  # side by side, the models in its help
    assert [(m.value, m.help) for m in answers] == [(
        "Haiku **billing** 50% · Sonnet **account** 90% · :orange[Haiku ≠ Sonnet]",
        r"Haiku: claude\-haiku\-5\-5 · Sonnet: claude\-sonnet\-5\-5")]
    assert "No operator has labelled this ticket yet" in texts(at)
    # every call: its answer, cost and time, "—" for what it lacks
    calls = next(d.value for d in at.dataframe if "tokens in/out" in d.value.columns)
    assert list(calls["model"]) == ["claude-haiku-5-5 (Haiku)", "claude-sonnet-5-5 (Sonnet)"]
    assert list(calls["label"]) == ["billing", "account"] and list(calls["cost"]) == ["$0.001000", "$0.002000"]
    assert "None" not in calls.to_string() and "—" in set(calls["reason"])


def test_spend_page_shows_the_seeded_spend_in_its_figures_and_charts(app_env: str,
                                                                     seeded: tuple[Database, dict[str, int]]) -> None:
    # seeded today: six Haiku calls at $0.001 (one an error the API billed) and two Sonnet calls at $0.002
    at = make_app("spend")
    assert len(at.get("plotly_chart")) == 6
    assert [(m.label, m.value) for m in at.metric][:4] == [
        ("Spend", "$0.0100"), ("Tickets", "6"), ("Cost per ticket", "$0.001667"), ("Escalated to Sonnet", "33%")]
    day = date.today().strftime("%b %d")
    spend = figure(at, "chart_spend")
    assert [t["x"] for t in spend["data"]] == [[day], [day]]
    assert bars(spend) == {"claude-haiku-5-5 (tier 1)": [pytest.approx(0.006)],
                           "claude-sonnet-5-5 (tier 2)": [pytest.approx(0.004)]}
    assert bars(figure(at, "chart_tickets")) == {"tickets": [6], "cost per ticket": [pytest.approx(0.01 / 6)]}
    assert bars(figure(at, "chart_escalation")) == {"escalated to Sonnet": [pytest.approx(2 / 6)]}
    tiered, alone = figure(at, "chart_alone")["data"][0]["x"]
    assert tiered == pytest.approx(0.01)
    saved = next(m.value for m in at.metric if m.label == "Saved vs Sonnet alone")
    assert saved == f"${alone - 0.01:.6f}"  # the estimate minus what was spent, as the chart draws it


SCRIPT = "<script>alert(1)</script> **bold** [link](http://x)"


def test_settings_page_validates_taxonomy_and_exports(seeded: tuple[Database, dict[str, int]]) -> None:
    from triage import settings as config

    at = make_app("settings")
    assert "No API key" in texts(at)
    at.session_state["taxonomy_editor"] = {"edited_rows": {1: {"name": "billing"}}, "added_rows": [],
                                           "deleted_rows": []}
    at.run()
    assert any("appears more than once" in e.value for e in at.error)  # said as it is edited; Save stays off
    assert at.button(key="save_taxonomy").disabled
    db, ids = seeded
    assert config.effective(db)[1].names == TAX.names  # the refused taxonomy was not stored
    at.button(key="prepare_export").click().run()
    data, name = at.session_state["export_data"]
    assert name.startswith("triage-tickets-") and name.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    got = [(int(r["ticket_id"]), r["text"], r["category"], r["status"], Decimal(r["cost_usd"])) for r in rows]
    assert got == [
        (ids["charged twice"], "charged twice", "billing", "classified", Decimal("0.001")),
        (ids["app crashes on upload"], "app crashes on upload", "technical", "classified", Decimal("0.001")),
        (ids["login or refund?"], "login or refund?", "account", "escalated", Decimal("0.003")),
        (ids["weird one"], "weird one", "technical", "needs_review", Decimal("0.003")),
        (ids["overloaded"], "overloaded", "", "failed", Decimal("0.001")),
        (ids[SCRIPT], SCRIPT, "product_feedback", "classified", Decimal("0.001"))]


def test_demo_button_on_an_empty_database_fills_every_page(app_env: str) -> None:
    from db.migrate import open_database

    at = make_app()
    at.button(key="load_demo").click().run(timeout=120)
    assert not at.exception
    assert not any(b.key == "load_demo" for b in at.button)
    db = open_database(app_env)
    with db.read() as s:
        uncorrected = set(s.scalars(select(Ticket.id).where(Ticket.corrected.is_(False))))
        labelled = s.scalars(select(func.count()).select_from(Ticket).where(Ticket.corrected.is_(True))).one()
    review_page = make_app("review")  # (how many the demo leaves depends on the local tier's training)
    listed = list(review_list(review_page).index)
    assert listed and set(listed) <= uncorrected and f"{len(listed)} tickets · page 1 of 1" in texts(review_page)
    spend = make_app("spend")
    assert any("Includes 266 **simulated** Haiku/Sonnet calls" in w.value for w in spend.warning)
    assert len(spend.get("plotly_chart")) == 6 and sum(sum(y) for y in bars(figure(spend, "chart_spend")).values()) > 0
    quality_page = make_app("quality")
    tiles = [m.label for m in quality_page.metric] + [md.value.split("  \n")[0] for md in quality_page.markdown]
    assert {"local model: answers right", "Haiku: answers right", "Sonnet: answers right"} <= set(tiles)
    # reliability, what-if, confusion, and Haiku's calibration: the demo's labels are enough to fit its map
    assert len(quality_page.get("plotly_chart")) == 4
    assert any(m.label == "Calibration error" for m in quality_page.metric)
    settings = make_app("settings")
    shown = {m.label: m.value for m in settings.metric}
    assert shown["Operator labels"] == str(labelled) and labelled >= 80  # the demo's corrections and confirmations
    trained_on = int(shown["Trained on"].removesuffix(" examples"))
    with db.read() as s:
        # newest first: the load, the demo's simulated blind-audit answers, the demo's run
        assert [e["event"] for e in db_audit.recent(s)][:3] == ["demo.load", "audit.answers", "run.start"]
    settings.button(key="retrain").click().run(timeout=120)
    assert not settings.exception
    with db.read() as s:  # retrained by the lead on the demo's labels, in the audit trail
        last = db_audit.recent(s)[0]
    assert (last["event"], last["actor"], last["detail"]["n_train"]) == ("local.retrain", "alice", trained_on)
    labels = last["detail"]["labels"]
    assert isinstance(labels, dict) and labels["operator"] == labelled


def test_signed_in_identity_is_used_instead_of_the_typed_name(seeded: tuple[Database, dict[str, int]]) -> None:
    from tests.dashboard.conftest import signed_in_app

    db, ids = seeded
    at = signed_in_app("lead")
    at.session_state["operator_name"] = "someone else"
    at.run()
    at.switch_page("app_pages/review.py").run()
    assert any("Signed in as **lena@example" in c.value and "lead" in c.value for c in at.caption)
    assert not any(t.key == "operator_name" for t in at.text_input)
    pick_label(at, "billing")
    at.button(key="save_next").click().run()
    with db.read() as s:
        assert s.scalars(select(Correction)).one().operator == "lena@example.com"


def test_a_rejected_key_and_a_rate_limit_show_as_plain_messages(app_env: str, fake: FakeAnthropic,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:

    from tests.support.fake_anthropic import Error

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-wrong")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "2")
    at = classify_and_wait(make_app(), "my invoice is wrong\nthe app crashes",
                           lambda at: any("The run stopped: the API key was rejected" in e.value for e in at.error))
    # (while the worker stops the run the page may say "Classification is paused" first: wait for the end state)
    assert any("The run stopped: the API key was rejected" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.exception
    from db.migrate import open_database

    with open_database(app_env).read() as s:  # nothing lost: both wait, saying why
        assert s.execute(select(Ticket.text, Ticket.status, Ticket.status_reason).order_by(Ticket.id)).all() == [
            ("my invoice is wrong", "pending", "the API key was rejected (401): invalid x-api-key"),
            ("the app crashes", "pending", "the API key was rejected (401): invalid x-api-key")]

    import streamlit as st

    st.cache_resource.clear()  # a new server process with a good key; the API answers 429 with no retry-after
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)  # (a spend-cap 429: a rate limit with a retry-after is
    fake.push(*[Error(429, "rate_limit_error", "You have reached your monthly spend cap rate limit")] * 6)  # paced
    at = classify_and_wait(make_app(), "please refund the double charge",
                           lambda at: any("429" in c.value for c in at.caption))
    assert any("429" in c.value and "rate limit" in c.value for c in at.caption), [c.value for c in at.caption]


def test_confirming_a_label_records_it_as_checked(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    at = make_app("review")
    select_review_rows(at, [2])
    assert "1 selected" in texts(at)
    at.button(key="confirm_selected").click().run()
    with db.read() as s:
        c = s.scalars(select(Correction)).one()
        assert (c.ticket_id, c.previous_label, c.new_label, c.note) == (ids["login or refund?"], "account", "account",
                                                                        "confirmed")
    open_ticket(at, ids["login or refund?"])
    assert any("confirmed **account**" in m.value for m in at.markdown)


def test_with_a_login_configured_a_typed_name_opens_nothing(seeded: tuple[Database, dict[str, int]]) -> None:
    from tests.dashboard.conftest import signed_in_app

    db, _ = seeded
    at = signed_in_app("signed_out")
    at.session_state["operator_name"] = "someone"  # a typed name is not an identity once sign-in is on
    at.run()
    assert [b.key for b in at.button] == ["sign_in"]
    assert not any(t.key == "operator_name" for t in at.text_input)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/review.py")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == 0


def test_a_reached_budget_is_announced_and_can_be_raised_in_settings(seeded: tuple[Database, dict[str, int]],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from triage import settings as config

    db, _ = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    config.save_engine(db, actor=LEAD, monthly_budget_usd=0.001)
    at = make_app()
    assert any("reached the monthly budget of \\$0.001" in w.value for w in at.warning)
    assert any("reached the monthly budget" in c.value for c in at.sidebar.caption)  # on every page
    settings = make_app("settings")
    settings.number_input[0].set_value(50.0)
    next(b for b in settings.button if b.label == "Save routing").click().run()
    assert any("Saved" in m.value for m in settings.success), [e.value for e in settings.error]
    assert not any("monthly budget" in w.value for w in make_app().warning)


def test_the_budget_warning_level_shows_in_the_sidebar_of_every_page(seeded: tuple[Database, dict[str, int]],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from triage import settings as config
    from triage.spend import reports as reporting

    db, _ = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    spent = reporting.spend_page(db, date(2000, 1, 1), date(2100, 1, 1), tier2_model="claude-sonnet-5-5").summary.spend
    config.save_engine(db, actor=LEAD, monthly_budget_usd=float(spent) / 0.9)
    for page in (None, "review", "spend", "quality", "settings"):
        at = make_app(page)
        assert any("90% of the monthly budget" in c.value for c in at.sidebar.caption), page


def test_the_spend_page_shows_interrupted_calls_and_calls_of_unknown_cost(
        seeded: tuple[Database, dict[str, int]]) -> None:
    import asyncio
    from decimal import Decimal

    from db import calls as db_calls
    from triage.domain import OK, CallResult
    from triage.spend import budget

    db, ids = seeded
    guard = budget.BudgetGuard(db, budget.Caps())
    asyncio.run(guard.abandon(guard.reserve(Decimal("0.0042"), 1, "claude-haiku-5-5"), "killed"))
    with db.transaction() as s:
        db_calls.record_call(s, ids["charged twice"], None, CallResult(1, "claude-haiku-5-5", OK, cost_known=False,
                                                                    cost_note="no price"))
    at = make_app("spend")
    info = " ".join(i.value for i in at.info)
    assert "Plus up to \\$0.004200 in 1 interrupted calls (estimated" in info
    assert "1 calls with unknown cost" in info


def test_the_economy_route_sends_a_batch_and_shows_its_state(app_env: str, fake: FakeAnthropic,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from db.migrate import open_database
    from triage.settings import Settings
    from triage.work import classify

    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    fake.batch_polls = 1_000  # stays "in progress" until the test ends it
    at = make_app()
    at.text_area(key="pasted").set_value("I was charged twice, refund please\nthe app crashes on upload").run()
    at.checkbox(key="batch").check().run()
    at.button(key="classify").click().run()
    assert not at.exception
    deadline = time.monotonic() + 30
    while not fake.batches and time.monotonic() < deadline:  # the background worker submits it
        time.sleep(0.2)
    assert len(fake.batches) == 1 and not any(r["path"] == "/v1/messages" for r in fake.requests)
    at.run()
    assert any("Economy batch msgbatch_" in i.value and "results within 24 h" in i.value for i in at.info)
    for b in fake.batches.values():
        b["polls_left"] = 0  # the batch ends
    db = open_database(app_env)
    news = classify.collect_open(db, Settings.from_env(), actor=LEAD)
    assert [n.state for n in news] == ["collected"]
    at.run()
    assert any("results recorded" in i.value for i in at.info)
    with db.read() as s:
        assert {st for st, in s.execute(select(Ticket.status))} == {"classified"}


def test_settings_says_which_confidence_the_threshold_is_compared_with(seeded: tuple[Database, dict[str, int]]) -> None:
    from db import calibrations

    db, _ = seeded
    at = make_app("settings")
    assert "claude-haiku-5-5's stated confidence: it has no calibration map yet" in texts(at)
    with db.transaction() as s:
        cal_id = calibrations.add(s, model="claude-haiku-5-5", a=1.1, b=-0.2, n=64, n_right=40, ece_before=0.2,
                                  ece_after=0.05, trigger="test", fitted_by="maria")
    at.run()
    assert (f"compared with claude-haiku-5-5's calibrated confidence (calibration #{cal_id}, fitted on 64 operator "
            "labels)") in texts(at)
