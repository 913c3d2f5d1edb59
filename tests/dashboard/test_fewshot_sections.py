"""Few-shot on the Quality, Spend and Settings pages under AppTest: accuracy with and without examples on
operator-labelled tickets (n for each), what the examples cost and what the prompt cache saved (exact), and the
setting itself."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dashboard.ui import money
from db import calls
from db.engine import Database
from db.migrate import open_database
from tests.dashboard.conftest import make_app
from tests.support.actors import LEAD
from triage import domain as base
from triage import ingest, labels, settings, taxonomy
from triage.domain import CallResult, Usage
from triage.quality import measure as quality
from triage.spend import fewshot as spend_fewshot
from triage.spend.pricing import PriceTable
from triage.work import runs

TAX = taxonomy.default()
TRUTH = {"refund my double charge": "billing", "the app crashes": "technical", "reset my password": "account",
         "please add dark mode": "product_feedback"}
WITHOUT = {"refund my double charge": "billing", "the app crashes": "billing", "reset my password": "technical",
           "please add dark mode": "product_feedback"}  # right on 2 of 4
WITH = {"refund my double charge": "billing", "the app crashes": "technical", "reset my password": "account"}  # 3/3
NOW = datetime.now(UTC).replace(microsecond=0)


PLAIN = Usage(400, 20)


def call(label: str, *, examples: int | None = None, usage: Usage = PLAIN, cost: Decimal = Decimal("0.00005")
         ) -> CallResult:
    return CallResult(1, "claude-haiku-5-5", base.OK, category=label, confidence=0.9, usage=usage, cost_usd=cost,
                      examples=examples, created_at=NOW, model_returned="claude-haiku-5-5")


def seed(db: Database, *, with_examples: bool = True, label: bool = True) -> dict[str, int]:
    imp = runs.start_run(db, [(None, t) for t in TRUTH], source="seed", actor=LEAD)
    ids = dict(zip(TRUTH, imp.ticket_ids, strict=True))
    with db.transaction() as s:
        for text, tid in ids.items():
            calls.record_call(s, tid, imp.run_id, call(WITHOUT[text]))
            if with_examples and text in WITH:
                calls.record_call(s, tid, imp.run_id, call(WITH[text], examples=11))
    if label:
        csv = "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in TRUTH.items())
        labels.import_labels(db, ingest.parse_labelled(csv, "csv"), TAX, file="truth.csv", actor=LEAD, retrain=False)
    return ids


def test_quality_compares_haiku_with_and_without_examples_on_the_same_labelled_tickets(app_env: str) -> None:
    db = open_database(app_env)
    seed(db)
    (c,) = quality.measure(db, classes=TAX.names).fewshot
    assert c["with"] == {"n": 3, "right": 3, "accuracy": 1.0} and c["without"] == {"n": 4, "right": 2,
                                                                                   "accuracy": 0.5}
    assert c["paired"] == {"n": 3, "with": 1.0, "without": 1 / 3}
    at = make_app("quality")
    shown = {m.label: m.value for m in at.metric}
    assert shown["With examples"] == "100%" and shown["Without"] == "50%"
    assert shown["Same tickets, with − without"] == "+67 pts"
    captions = " ".join(x.value for x in at.caption)
    assert "3 operator-labelled tickets answered with examples" in captions and "50% of 4" in captions
    assert "On the 3 tickets answered both ways" in captions
    db.dispose()


def test_quality_without_few_shot_calls_or_without_labels_says_so(app_env: str) -> None:
    db = open_database(app_env)
    seed(db, with_examples=False)
    at = make_app("quality")
    assert "With examples" not in [m.label for m in at.metric]
    assert any("No Haiku answers with labelled examples yet" in x.value for x in at.caption)
    db.dispose()


def test_no_labels_no_comparison(app_env: str) -> None:
    db = open_database(app_env)
    seed(db, label=False)
    assert quality.measure(db).fewshot == []  # with-examples calls exist, but no operator label to judge them by
    at = make_app("quality")
    assert any("No operator labels yet" in x.value for x in at.info) and not at.exception
    db.dispose()


def test_spend_shows_what_examples_cost_and_what_the_cache_saved_exactly(app_env: str) -> None:
    db = open_database(app_env)
    imp = runs.start_run(db, [(None, f"ticket {i}") for i in range(4)], source="seed", actor=LEAD)
    prices = PriceTable.default()
    cached = [Usage(150, 20, 700, 0, 0), Usage(160, 20, 0, 0, 700), Usage(140, 20, 0, 0, 700)]  # write, 2 reads
    with db.transaction() as s:
        calls.record_call(s, imp.ticket_ids[0], imp.run_id, call("billing", usage=Usage(400, 20),
                                                                 cost=prices.cost("claude-haiku-5-5", Usage(400, 20),
                                                                                  NOW)))
        for tid, u in zip(imp.ticket_ids[1:], cached, strict=True):
            calls.record_call(s, tid, imp.run_id, call("billing", examples=11, usage=u,
                                                       cost=prices.cost("claude-haiku-5-5", u, NOW)))
        old = call("billing", examples=11, usage=Usage(100, 20, 0, 0, 900))  # outside the dates measured
        old.created_at = NOW - timedelta(days=40)
        calls.record_call(s, imp.ticket_ids[0], imp.run_id, old)
    data = spend_fewshot.measure(db, NOW.date(), NOW.date(), prices)
    # Haiku 5.5 per million tokens: input 0.10, 5-minute write 0.125, read 0.01
    assert (data.read_tokens, data.write_tokens) == (1400, 700)
    assert data.read_cost == Decimal("1400") * Decimal("0.01") / 10**6
    assert data.read_at_input == Decimal("1400") * Decimal("0.10") / 10**6
    assert data.write_cost - data.write_at_input == Decimal("700") * Decimal("0.025") / 10**6
    assert data.saved == Decimal("0.000126") - Decimal("0.0000175") == Decimal("0.0001085")
    (e,) = data.examples
    assert (e.calls, e.examples, e.calls_without) == (3, 33, 1)
    assert e.extra_tokens_per_call == (850 + 860 + 840) / 3 - 400
    cost_with = sum(prices.cost("claude-haiku-5-5", u, NOW) for u in cached)
    assert e.extra_cost == cost_with - prices.cost("claude-haiku-5-5", Usage(400, 20), NOW) * 3
    at = make_app("spend")
    shown = {m.label: m.value for m in at.metric}
    assert shown["claude-haiku-5-5 calls with examples"] == "3"
    assert shown["Extra prompt tokens a call"] == "+450"
    assert shown["Saved by caching"] == money(data.saved) and shown["Cache reads"] == "1,400 tokens"
    db.dispose()


def test_settings_turns_few_shot_on_and_the_router_follows(app_env: str) -> None:
    db = open_database(app_env)
    at = make_app("settings")
    at.number_input[[n.label for n in at.number_input].index("Examples retrieved per request (0 = off)")] \
        .set_value(4)
    next(b for b in at.button if b.label == "Save few-shot").click().run()
    assert not at.exception
    assert settings.effective(db)[0].fewshot_k == 4
    assert any("no ticket carries an operator label" in x.value for x in at.info)
    db.dispose()


def test_spend_page_without_few_shot_shows_no_section(app_env: str) -> None:
    db = open_database(app_env)
    seed(db, with_examples=False)
    at = make_app("spend")
    assert "Saved by caching" not in [m.label for m in at.metric] and not at.exception
    db.dispose()


def test_triage_quality_prints_the_same_comparison(app_env: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from triage.cli import main

    db = open_database(app_env)
    seed(db)
    monkeypatch.setenv("TRIAGE_DATABASE_URL", app_env)
    assert main(["quality", "--json"]) == 0
    (c,) = json.loads(capsys.readouterr().out)["fewshot"]
    assert (c["with"]["n"], c["with"]["accuracy"], c["without"]["n"], c["without"]["accuracy"]) == (3, 1.0, 4, 0.5)
    assert main(["quality"]) == 0
    assert "few-shot: claude-haiku-5-5: right on 100% of 3 operator-labelled tickets answered with examples" \
        in capsys.readouterr().out
    db.dispose()
