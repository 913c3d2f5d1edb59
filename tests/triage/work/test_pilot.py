"""`triage pilot`: a seeded sample of a labelled file through the routes, as recorded runs under the budget and
the pilot's own cap, kept apart from production. Real CLI runs: the official SDK over HTTP to the fake Messages
API, a real SQLite database, the local model on the CPU."""

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db import paths, queue
from db import pilots as db_pilots
from db.engine import Database
from db.migrate import open_database
from db.models import AuditDraw, CallAttempt, ModelCall, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import Action, FakeAnthropic, default_responder
from tests.test_budget import billed
from triage import export, review, taxonomy
from triage.cli import main
from triage.domain import PILOT, ReviewFilter, from_pico
from triage.quality.pilot import call_of
from triage.routing.router import should_escalate
from triage.settings import Settings
from triage.work import pilot

TAX = taxonomy.default()
BASES = [("I was charged twice, please refund", "billing"), ("the app crashes on upload", "technical"),
         ("I forgot my password and cannot log in", "account"), ("please add dark mode, it would be nice",
                                                                 "product_feedback")]
CONFS = [0.95, 0.85, 0.75, 0.65, 0.55, 0.45]


def write_gold(path: Path, n: int = 36) -> Path:
    """Rows whose Haiku answer ([[h=...]], at [[conf=...]]) is wrong on every third row and whose Sonnet answer
    ([[s=...]]) is wrong on every fifth: the routes differ, and every answer can be scored against the label."""
    labels = [b[1] for b in BASES]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["body", "final category"])
        for i in range(n):
            text, label = BASES[i % 4]
            haiku = labels[(labels.index(label) + 1) % 4] if i % 3 == 0 else label
            sonnet = labels[(labels.index(label) + 2) % 4] if i % 5 == 0 else label
            w.writerow([f"{text} #{i} [[h={haiku}]] [[s={sonnet}]] [[conf={CONFS[i % 6]}]]", label])
    return path


def scripted(body: dict[str, Any]) -> Action:
    """The keyword model, answering the category the ticket's marker names for the model asked."""
    reply = default_responder(body)
    text = json.dumps(body["messages"])
    key = "s" if "sonnet" in body["model"] else "h"
    m = re.search(rf"\[\[{key}=(\w+)\]\]", text)
    body_out = getattr(reply, "json_body", None)
    if m and isinstance(body_out, dict):
        body_out["category"] = m.group(1)
    return reply


def pilot_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, Any, str]:
    code = main(["pilot", *args, "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out.strip() else None), out.err


def independent(db: Database, way: str, threshold: float, gold_by_row: dict[int, str], escalates: bool
                ) -> tuple[int, int]:
    """Right and measured, counted straight from the recorded calls of the pilot's `way` run: the route's label is
    Sonnet's where Haiku's stated confidence is under `threshold` (no calibration is in force), else Haiku's."""
    with db.read() as s:
        rows = s.execute(select(Ticket.external_id, ModelCall.tier, ModelCall.category, ModelCall.confidence)
                         .join(ModelCall, ModelCall.ticket_id == Ticket.id)
                         .where(Ticket.external_id.like(f"pilot:%:{way}#%"), ModelCall.outcome == "ok")
                         .order_by(ModelCall.id)).all()
    answers: dict[int, dict[int, tuple[str, float]]] = {}
    for ext, tier, category, conf in rows:
        assert ext is not None and category is not None and conf is not None  # answered ("ok") calls
        answers.setdefault(int(ext.rpartition("#")[2]), {})[tier] = (category, conf)
    right = n = 0
    for row, by_tier in answers.items():
        label, conf = by_tier[1]
        if escalates and conf < threshold:
            if 2 not in by_tier:
                continue
            label = by_tier[2][0]
        n += 1
        right += label == gold_by_row[row]
    return right, n


def test_each_route_scores_its_own_recorded_answers_and_projects_the_month(env: dict[str, str], fake: FakeAnthropic,
                                                                           db_url: str, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake.responder = scripted
    gold = write_gold(tmp_path / "history.csv")
    code, r, err = pilot_json(capsys, [str(gold), "--sample", "24", "--cap", "2", "--volume", "20000",
                                       "--text-column", "body", "--label-column", "final category"])
    assert code == 0, err
    db = open_database(db_url)
    with open(gold, newline="") as f:
        file_labels = [row["final category"] for row in csv.DictReader(f)]
    labels = {row: file_labels[row - 1] for row in r["rows"]}
    assert len(r["rows"]) == 24 and r["thresholds"] == [0.5, 0.6, 0.7, 0.8, 0.9]
    routes = r["routes"]
    assert set(routes) == {"local", "haiku", "grouped@0.70", *(f"haiku>sonnet@{t:.2f}" for t in r["thresholds"])}
    for key, threshold, escalates, way in [("haiku", 0.7, False, "two_tier"),
                                           *((f"haiku>sonnet@{t:.2f}", t, True, "two_tier") for t in r["thresholds"]),
                                           ("grouped@0.70", 0.7, True, "grouped")]:
        right, n = independent(db, way, threshold, labels, escalates)
        x = routes[key]
        assert (x["n"], round(x["accuracy"] * x["n"])) == (n, right) == (24, right), key
        assert x["low"] <= x["accuracy"] <= x["high"]
        monthly = Decimal(x["cost_per_1000_usd"]) * 20
        assert abs(Decimal(x["projected"]["monthly_api_usd"]) - monthly) <= Decimal("0.00001")  # both rounded
        assert x["projected"]["review_hours"] == pytest.approx(x["review_share"] * 20000 * 2 / 60, abs=0.1)
    assert len({routes[k]["accuracy"] for k in routes if k.startswith("haiku")}) > 2  # the routes do differ
    assert routes["haiku>sonnet@0.50"]["escalated_share"] < routes["haiku>sonnet@0.90"]["escalated_share"]
    assert routes["local"]["n"] == 24 and routes["local"]["cost_per_1000_usd"] == "0"
    # Sonnet was asked once per ticket, at the highest threshold: the lower ones are derived from those answers
    with db.read() as s:
        two_tier = s.scalar(select(Run.id).where(Run.purpose == PILOT, Run.threshold == 0.9))
        asked = s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.run_id == two_tier,
                                                                            ModelCall.tier == 2))
        assert two_tier is not None
        rows = [c for c in db_pilots.calls_of_runs(s, [two_tier]) if c["tier"] == 1]
    assert len(rows) == 24 and asked == sum(should_escalate(call_of(c), 0.9) for c in rows) > 0
    assert "derived" in r["sonnet_asked_once"]
    db.dispose()


def test_the_pilot_stops_at_its_cap_with_everything_billed_on_the_books(env: dict[str, str], fake: FakeAnthropic,
                                                                        db_url: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fake.responder = scripted
    gold = write_gold(tmp_path / "history.csv", 60)
    cap = Decimal("0.012")
    code, r, err = pilot_json(capsys, [str(gold), "--sample", "60", "--cap", str(cap), "--text-column", "body",
                                       "--label-column", "final category"])
    assert code == 5 and "cap" in err
    db = open_database(db_url)
    with db.read() as s:
        recorded = from_pico(s.scalar(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))))
        estimated = from_pico(s.scalar(select(func.coalesce(func.sum(CallAttempt.estimated_pico), 0))))
        pending = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending"))
    assert billed(fake) == recorded  # every answer the API billed is on the books, exactly
    assert recorded + estimated <= cap and Decimal(r["spent_usd"]) == recorded + estimated
    assert len(fake.usage_log) > 3  # it did spend, and stopped short of the sample's cost
    assert r["stopped"] and pending == 0  # nothing left for a worker to send later
    assert 0 < r["routes"]["haiku"]["n"] < 60 and r["routes"]["grouped@0.70"]["n"] == 0
    assert any("not asked" in n for n in r["notes"])
    assert main(["worker", "--once"]) == 0 and billed(fake) == recorded  # no worker picks a pilot's tickets up
    db.dispose()


def test_pilot_tickets_stay_out_of_production_figures_and_queues(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")  # every production ticket settled without review is drawn
    fake.responder = scripted
    gold = write_gold(tmp_path / "history.csv", 12)
    production = tmp_path / "today.txt"
    production.write_text("my card was charged twice\nthe export crashes\n")
    assert main(["classify", str(production), "--tier", "haiku"]) == 0
    capsys.readouterr()
    code, r, err = pilot_json(capsys, [str(gold), "--sample", "12", "--cap", "1", "--text-column", "body",
                                       "--label-column", "final category"])
    assert code == 0, err
    db = open_database(db_url)
    with db.read() as s:
        own = set(s.scalars(select(Ticket.id).where(Ticket.purpose == PILOT)))
        mine = set(s.scalars(select(Ticket.id).where(Ticket.purpose != PILOT)))
        assert len(own) == 36 and len(mine) == 2  # three ways of asking, twelve rows each
        assert set(s.scalars(select(AuditDraw.ticket_id))) == mine  # drawn: production only
        today = datetime.now(UTC).date()
        assert sum(p["tickets"] for p in paths.paths(s, today - timedelta(days=1), today)) == 2
        assert paths.paths(s, today - timedelta(days=1), today) == paths.paths_from_tickets(s, None, None)
        assert not queue.claim_pending(s, "another-worker", 100)  # a worker never takes a pilot's ticket
    shown = review.page(db, ReviewFilter(), actor=LEAD, size=200)
    assert {row.id for row in shown.rows} == mine and shown.total == 2
    data, _ = export.export_tickets(db, "jsonl", actor=LEAD)  # every ticket but a pilot's
    assert len(data.decode().splitlines()) == 2
    # a label file with the pilot's texts labels no pilot ticket: it becomes tickets of its own
    labelled = tmp_path / "labels.csv"
    with open(gold, newline="") as f:
        first = next(csv.DictReader(f))
    labelled.write_text(f"text,label\n\"{first['body']}\",billing\n")
    assert main(["label", str(labelled), "--operator", "ana", "--no-retrain"]) == 0
    with db.read() as s:
        assert not s.scalar(select(func.count()).select_from(Ticket).where(Ticket.purpose == PILOT,
                                                                           Ticket.label_source == "operator"))
    # its spend is real: in the month's spend against the budget
    from triage.spend import budget

    standing = budget.standing(db, budget.Caps())
    assert standing.month >= Decimal(r["spent_usd"]) > 0
    capsys.readouterr()
    assert main(["spend", "--json"]) == 0  # and shown apart where spend is split
    spend = json.loads(capsys.readouterr().out)
    assert Decimal(spend["pilot_usd"]) == Decimal(r["spent_usd"]) < Decimal(spend["total_usd"])
    # nor is a pilot's ticket escalated by hand: refused by id, and nothing is asked
    asked = len(fake.requests)
    assert main(["escalate", "--id", str(min(own))]) == 2
    assert "belongs to a pilot" in capsys.readouterr().err and len(fake.requests) == asked
    db.dispose()


def test_the_same_seed_draws_the_same_sample(cli_db: Database, tmp_path: Path) -> None:
    gold = write_gold(tmp_path / "history.csv", 50)
    plan = pilot.Plan(10, Decimal("1"), seed=7, text_column="body", label_column="final category")
    settings = Settings()  # no API key: only the local route is queued; nothing is sent

    def rows(p: pilot.Plan) -> Any:
        pid = pilot.start(cli_db, settings, TAX, str(gold), p, actor=LEAD)
        spec = pilot.progress(cli_db, pid, actor=LEAD)["spec"]
        assert spec is not None
        return spec["rows"]

    first = rows(plan)
    assert first == rows(plan) and len(first) == 10
    assert first != rows(pilot.Plan(10, Decimal("1"), seed=8, text_column="body", label_column="final category"))


@pytest.mark.parametrize("args, said", [
    (["--sample", "5", "--cap", "1", "--text-column", "nope"], "nope"),
    (["--sample", "500", "--cap", "1", "--text-column", "body", "--label-column", "final category"], "more than"),
    (["--sample", "5", "--cap", "0", "--text-column", "body"], "--cap"),
    (["--sample", "5", "--cap", "lots", "--text-column", "body"], "--cap"),
    (["--sample", "0", "--cap", "1"], "--sample"),
    (["--sample", "5", "--cap", "1", "--thresholds", "0.7,high"], "--thresholds"),
])
def test_bad_input_is_refused_clearly_and_queues_nothing(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         args: list[str], said: str) -> None:
    gold = write_gold(tmp_path / "history.csv", 12)
    assert main(["pilot", str(gold), *args]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and err.startswith("error:")
    assert not fake.requests


def test_a_label_outside_the_taxonomy_or_a_missing_file_is_refused(env: dict[str, str], fake: FakeAnthropic,
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nrefund please,refunds\n")
    assert main(["pilot", str(bad), "--sample", "1", "--cap", "1"]) == 2
    assert "outside the taxonomy" in capsys.readouterr().err
    assert main(["pilot", str(tmp_path / "missing.csv"), "--sample", "1", "--cap", "1"]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert not fake.requests
