"""The routing story: one service for the Routing page, `triage report` and the checks against `triage spend`,
`triage quality` and the raw calls, on a seeded two-period history."""

import json
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import ColumnElement, func, select

from db import calls as db_calls
from db import queue, runs
from db import story as db_story
from db.engine import Database
from db.models import ModelCall, Ticket
from tests.support.actors import op
from triage import report, review, taxonomy
from triage import story as story_mod
from triage.cli import main
from triage.domain import OK, CallResult, Usage, from_pico
from triage.quality import measure
from triage.routing.router import decide
from triage.spend.pricing import PriceTable

TAX = taxonomy.default()
PRICES = PriceTable.default()
H, S = "claude-haiku-5-5", "claude-sonnet-5-5"
END = date(2026, 11, 30)
START = END - timedelta(days=9)  # ten days; the ten before are the previous period


def _call(tier: int, model: str, label: str, conf: float, when: datetime, n: int) -> CallResult:
    usage = Usage(700 + n, 40 + n % 7)
    return CallResult(tier, model, OK, category=label, confidence=conf, model_returned=model, reason="r",
                      usage=usage, cost_usd=PRICES.cost(model, usage, when), latency_ms=500 + n,
                      request_id=f"req_{tier}_{n}", created_at=when)


def seed(db: Database, n: int = 60) -> dict[int, str]:
    """n tickets over twenty days: Haiku alone, Haiku then Sonnet, Sonnet alone, some sent to review; then
    operators confirm some answers and correct others, on the days after. Returns ticket id -> the truth."""
    cats = TAX.names
    with db.transaction() as s:
        run = runs.create_run(s, started_by="t", source="seed", mode="auto", threshold=0.7)
        imp = queue.import_tickets(s, [(None, f"ticket number {i}") for i in range(n)], source="seed", run_id=run)
        queue.claim_pending(s, "t", n, run)
    truth = {}
    with db.transaction() as s:
        for i, tid in enumerate(imp.ticket_ids):
            when = datetime(2026, 11, 11, 9, tzinfo=UTC) + timedelta(days=i % 20, minutes=i)
            right = cats[i % len(cats)]
            truth[tid] = right
            kind = i % 5
            calls = []
            if kind != 4:  # kind 4: Sonnet asked directly
                haiku_label = right if i % 7 else cats[(i + 1) % len(cats)]
                calls.append(_call(1, H, haiku_label, 0.9 if kind in (0, 1) else 0.5, when, i))
            if kind in (2, 3, 4):
                calls.append(_call(2, S, right if i % 6 else cats[(i + 2) % len(cats)],
                                   0.9 if kind != 3 else 0.4, when + timedelta(seconds=3), i))
            for c in calls:
                db_calls.record_call(s, tid, run, c)
            db_calls.apply_outcome(s, tid, decide(calls, 0.7))
            queue.backdate_ticket(s, tid, when)
    with db.read() as s:
        tickets = queue.tickets_by_id(s, imp.ticket_ids)
    reviewed = {}
    for i, tid in enumerate(imp.ticket_ids):
        if i % 3 == 0:
            t = tickets[tid]
            review.correct(db, tid, truth[tid], actor=op("rita"), expected_version=t.version, taxonomy=TAX)
            reviewed[tid] = t.created_at + timedelta(hours=2)
    with db.transaction() as s:
        db_story.backdate_reviews(s, list(reviewed), reviewed)
    return truth


@pytest.fixture
def history(cli_db: Database) -> Database:
    seed(cli_db)
    return cli_db


def story(db: Database, minutes: float = 2.0) -> story_mod.Story:
    return story_mod.story(db, START, END, minutes_per_review=minutes, tier2_model=S, today=END)


def days(start: date, end: date) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (ModelCall.created_at >= datetime.combine(start, datetime.min.time(), UTC),
            ModelCall.created_at < datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC))


def test_money_equals_triage_spend_and_the_raw_calls(history: Database, capsys: pytest.CaptureFixture[str]) -> None:
    st = story(history)
    assert main(["spend", "--json", "--since", str(START), "--until", str(END)]) == 0
    spent = json.loads(capsys.readouterr().out)["total_usd"]
    assert str(st.current.total.normalize()) == spent or f"{st.current.total:f}".rstrip("0") == spent
    with history.read() as s:
        per_tier = dict(s.execute(select(ModelCall.tier, func.sum(ModelCall.cost_pico)).where(*days(START, END))
                                  .group_by(ModelCall.tier)).all())
        before = s.scalar(select(func.sum(ModelCall.cost_pico)).where(
            *days(START - timedelta(days=10), START - timedelta(days=1))))
    assert st.current.total == from_pico(sum(per_tier.values())) > 0
    assert {t.tier: t.spend for t in st.current.tiers if t.spend} == {k: from_pico(v) for k, v in per_tier.items()}
    assert st.previous.total == from_pico(before) > 0
    assert (st.previous.start, st.previous.end) == (START - timedelta(days=10), START - timedelta(days=1))


def test_paths_follow_the_tickets_rows(history: Database) -> None:
    st = story(history)
    p = st.current
    with history.read() as s:
        rows = s.execute(select(Ticket.tier1_category, Ticket.tier2_category, Ticket.status, Ticket.corrected)
                         .where(Ticket.created_at >= datetime.combine(START, datetime.min.time(), UTC),
                                Ticket.created_at < datetime.combine(END + timedelta(days=1),
                                                                     datetime.min.time(), UTC))).all()
    assert p.tickets == len(rows) == 30
    assert p.into(story_mod.HAIKU) == sum(1 for r in rows if r.tier1_category)
    assert p.into(story_mod.SONNET) == sum(1 for r in rows if r.tier2_category)
    assert sum(f.tickets for f in p.flows if (f.source, f.target) == (story_mod.HAIKU, story_mod.SONNET)) == \
        sum(1 for r in rows if r.tier1_category and r.tier2_category)
    assert p.into(story_mod.REVIEW) == sum(1 for r in rows if r.status == "needs_review") > 0
    labelled = p.into(story_mod.CONFIRMED) + p.into(story_mod.CORRECTED)
    assert labelled == sum(1 for r in rows if r.corrected) > 0
    assert p.into(story_mod.CORRECTED) > 0 and p.into(story_mod.CONFIRMED) > 0
    # every ticket into a tier leaves it once: conservation through the middle nodes
    for node in (story_mod.HAIKU, story_mod.SONNET):
        assert p.into(node) == sum(f.tickets for f in p.flows if f.source == node)
    tiers = {t.name: t for t in p.tiers}
    assert sum(t.decided for t in tiers.values()) == p.tickets
    assert tiers["Sonnet"].checked == sum(1 for r in rows if r.tier2_category and r.corrected)


def test_right_to_date_is_triage_quality(history: Database) -> None:
    st = story(history)
    q = measure.measure(history)
    by_tier = {t["tier"]: t for t in q.per_tier}
    for t in st.current.tiers:
        if t.tier in by_tier:
            assert t.labelled_to_date == by_tier[t.tier]["n"]
            assert t.accuracy_to_date == pytest.approx(by_tier[t.tier]["accuracy"])
    assert {1, 2} <= set(by_tier)


def test_reviewer_time_counts_reviews_per_day_at_the_setting(history: Database) -> None:
    two, five = story(history, 2.0).current, story(history, 5.0).current
    assert two.review_count == sum(d.reviews for d in two.reviews) == two.reviewed_tickets > 0
    assert len({d.day for d in two.reviews}) == len(two.reviews) > 1  # spread over the days, per day
    assert two.review_hours == pytest.approx(two.review_count * 2 / 60)
    assert five.review_hours == pytest.approx(five.review_count * 5 / 60)
    line = next(x for x in story(history).headline if x.startswith("Operators reviewed"))
    assert f"{two.reviewed_tickets:,} tickets" in line and f"{two.review_hours:,.1f} hours" in line


def test_minutes_per_review_is_a_checked_setting(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "set", "minutes_per_review", "0"]) == 2
    assert main(["settings", "set", "minutes_per_review", "3.5"]) == 0
    from triage import settings

    merged, _ = settings.effective(cli_db)
    assert merged.minutes_per_review == 3.5


def test_report_json_total_is_triage_spend_to_the_last_digit(history: Database, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "story.json"
    assert main(["report", "--since", str(START), "--until", str(END), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["spend", "--json", "--since", str(START), "--until", str(END)]) == 0
    spent = json.loads(capsys.readouterr().out)["total_usd"]
    data = json.loads(out.read_text())
    assert data["total_usd"] == spent and Decimal(spent) > 0
    assert data["database"].endswith("triage.db") and data["price_table"]
    assert data["period"]["tickets"] == 30 and data["previous_period"]["tickets"] == 30
    assert sum(Decimal(t["spend_usd"]) for t in data["period"]["tiers"]) == Decimal(spent)
    flows = {(f["from"], f["to"]): f["tickets"] for f in data["period"]["flows"]}
    assert flows[("Haiku", "Sonnet")] > 0


def test_report_html_is_self_contained_with_the_sankey(history: Database, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "story.html"
    assert main(["report", "--since", str(START), "--until", str(END), "--out", str(out)]) == 0
    page = out.read_text()
    assert '"type":"sankey"' in page.replace(" ", "")
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", page, re.I)
    assert str(START) in page and "triage.db" in page and "prices.json" in page
    st = story(history)
    assert all(line.replace("'", "&#x27;") in page for line in st.headline)


def test_report_pdf_is_a_pdf_or_says_plainly_why_not(history: Database, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "story.pdf"
    if not shutil.which("chromium"):
        pytest.skip("no chromium here to print the PDF")
    assert main(["report", "--since", str(START), "--until", str(END), "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    pypdf = pytest.importorskip("pypdf")
    import io

    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    assert "Routing story" in text and "Haiku" in text
    monkeypatch.setenv("TRIAGE_CHROMIUM", str(tmp_path / "none"))
    capsys.readouterr()
    assert main(["report", "--out", str(tmp_path / "again.pdf")]) == 2
    err = capsys.readouterr().err
    assert "no PDF renderer" in err and ".html" in err and "Traceback" not in err


def test_sankey_places_every_node_in_its_column_with_room_for_its_label(history: Database) -> None:
    p = story(history).current
    node = report.sankey(p).data[0].node
    named = [(lbl, x, y) for lbl, x, y in zip(node.label, node.x, node.y, strict=True) if lbl]
    assert {lbl.split("<br>")[0] for lbl, _, _ in named} >= {"Tickets in", "Haiku", "Sonnet", "Auto-settled"}
    assert all(0 < y < 1 for _, _, y in named)
    # the last real column short of the right edge, an empty node beyond it: its labels go right, not over links
    assert max(x for _, x, _ in named) < 0.8 and node.label[-1] == "" and max(node.x) > 0.99
    for x in {x for _, x, _ in named}:  # a column's nodes do not overlap (centres apart, in order)
        ys = [y for _, xx, y in named if xx == x]
        assert ys == sorted(ys) and len(set(ys)) == len(ys)
