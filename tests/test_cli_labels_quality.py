"""`triage label` and `triage quality` end to end, against a temporary SQLite database (no API key needed: the
history is seeded with scripted models, and importing labels calls none)."""

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from db.engine import Database
from db.models import Correction, ModelCall, Ticket
from tests.support.actors import LEAD, op
from tests.support.fakes import ScriptedProvider
from triage import review, taxonomy
from triage.cli import main
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()
T1 = {"a": ("billing", 0.95), "b": ("billing", 0.9), "c": ("account", 0.5), "d": ("technical", 0.4)}
T2 = {"c": ("billing", 0.9), "d": ("technical", 0.8)}
TRUTH = {"a": "billing", "b": "account", "c": "billing", "d": "technical"}


def seed_history(db: Database, label_by_review: bool = True) -> dict[str, int]:
    """Four tickets Haiku answered (two escalated to Sonnet); an operator labelled each: the right answers are
    known, so every figure below is worked out by hand."""
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: T1[t]),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: T2[t]), TAX)
    imp = runs.start_run(db, [(None, k) for k in T1], source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    ids = dict(zip(T1, imp.ticket_ids, strict=True))
    if label_by_review:
        with db.read() as s:
            versions = {t.id: t.version for t in s.scalars(select(Ticket))}
        for key, tid in ids.items():
            review.correct(db, tid, TRUTH[key], actor=op("op"), expected_version=versions[tid], taxonomy=TAX)
    return ids


def test_quality_json_gives_the_known_figures(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    seed_history(cli_db)
    assert main(["quality", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"measured_on", "n_tickets", "label_sources", "since", "per_model", "flips", "whatif",
                        "whatif_on", "reliability", "calibrations", "fewshot", "by_group_size", "unreviewed",
                        "priority", "audit_weighted", "whatif_weighting"}
    assert out["whatif_on"] == "stated confidence"  # 4 labels: no calibration yet
    assert [(c["model"], c["n"], c["in_force"], c["missing"]) for c in out["calibrations"]] == [
        ("claude-haiku-5-5", 4, None, "not enough labels yet: 4 of 50 labelled answers"),
        ("claude-sonnet-5-5", 2, None, "not enough labels yet: 2 of 50 labelled answers")]
    assert out["fewshot"] == []  # no call carried few-shot examples
    assert out["n_tickets"] == 4 and out["label_sources"] == {"review": 4} and out["since"] is None
    assert "4 tickets an operator labelled" in out["measured_on"] and "hard tickets" in out["measured_on"]
    haiku, sonnet = out["per_model"]
    assert set(haiku) >= {"tier", "model", "n", "accuracy", "macro_f1", "ece", "confusion"}
    assert (haiku["tier"], haiku["model"], haiku["n"], haiku["accuracy"]) == (1, "claude-haiku-5-5", 4, 0.5)
    # F1: billing 0.5 (a right, b wrongly billing, c missed), technical 1.0, account 0.0 -> mean 0.5
    assert haiku["macro_f1"] == pytest.approx(0.5, abs=1e-12)
    # ECE: 0.9 (wrong) starts the 0.9-1.0 bin, with 0.95 (right): |0.925-0.5| x 2; then |0.5-0| and |0.4-1|, over 4
    assert haiku["ece"] == pytest.approx((0.425 * 2 + 0.5 + 0.6) / 4, abs=1e-9)
    assert haiku["confusion"] == {"labels": ["billing", "technical", "product_feedback", "account"],
                                  "matrix": [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]}
    assert (sonnet["model"], sonnet["n"], sonnet["accuracy"], sonnet["macro_f1"]) == ("claude-sonnet-5-5", 2, 1.0, 1.0)
    assert sonnet["ece"] == pytest.approx((0.1 + 0.2) / 2, abs=1e-9)
    assert sonnet["confusion"]["matrix"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    at = {w["threshold"]: w for w in out["whatif"]}
    # Haiku costs $0.001 a call, Sonnet $0.002: cost per ticket = 0.001 + 0.002 x escalated share
    assert (at[0.5]["escalation_rate"], at[0.5]["accuracy"], at[0.5]["cost_per_ticket"]) == (0.25, 0.5, "0.0015")
    assert (at[0.7]["escalation_rate"], at[0.7]["accuracy"], at[0.7]["cost_per_ticket"]) == (0.5, 0.75, "0.002")
    assert (at[0.95]["escalation_rate"], at[0.95]["replayed"], at[0.95]["cost_per_ticket"]) == (0.75, 3, "0.0025")
    assert out["flips"] == {"escalated": 2, "flipped": 1, "sonnet_right": 1, "haiku_right": 0}
    # at 0.85 Haiku keeps a (right) and b (wrong); Sonnet settles c (0.9, right); d (Sonnet 0.8) goes to review
    assert (at[0.85]["settled"], at[0.85]["settled_right"], at[0.85]["review_rate"]) == (3, 2, 0.25)
    assert out["unreviewed"]["audited"] == 0  # nothing answered blind: the review labels above are all there is


def test_quality_is_the_same_function_the_page_shows(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    from triage.quality import groups as quality_groups
    from triage.quality import measure as quality

    seed_history(cli_db)
    assert main(["quality", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    by_size = [x.to_dict() for x in quality_groups.by_group_size(cli_db)]  # the page's section by group size
    from triage.quality import priority, unreviewed
    from triage.quality.report import priority_dict

    assert printed == json.loads(json.dumps({**quality.measure(cli_db, classes=TAX.names).to_dict(),
                                             "by_group_size": by_size,
                                             "unreviewed": unreviewed.figures(cli_db).to_dict(),
                                             "priority": priority_dict(priority.measure(cli_db, actor=LEAD))}))


def test_quality_since_leaves_older_answers_out(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    ids = seed_history(cli_db)
    with cli_db.transaction() as s:
        s.execute(update(ModelCall).where(ModelCall.ticket_id == ids["a"])
                  .values(created_at=datetime.now(UTC) - timedelta(days=10)))
    since = (date.today() - timedelta(days=5)).isoformat()
    assert main(["quality", "--since", since, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    haiku = out["per_model"][0]
    assert out["since"] == since and out["n_tickets"] == 3 and f"since {since}" in out["measured_on"]
    assert (haiku["n"], haiku["accuracy"]) == (3, pytest.approx(1 / 3))  # a (right) is older: b, c wrong, d right


def test_quality_text_report(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quality"]) == 0
    assert "No operator-labelled tickets" in capsys.readouterr().out
    seed_history(cli_db)
    assert main(["quality"]) == 0
    out = capsys.readouterr().out
    assert "Measured on 4 tickets an operator labelled" in out
    assert "   1  claude-haiku-5-5            4     0.500     0.500  0.488" in out
    assert "Haiku (claude-haiku-5-5): rows are the operator's label, columns the model's" in out
    assert "what-if" in out and "$0.001500" in out


LABELS = ("id,text,label\n"
          ",a,billing\n"  # matched by text
          ",b,account\n"
          ",c,billing\n"
          ",d,technical\n"
          "N-1,please add a dark mode,product_feedback\n"  # new
          "N-2,,billing\n"  # no text
          "N-3,refund me,Refunds\n")  # not a category


def test_label_imports_audits_retrains_and_a_second_run_changes_nothing(cli_db: Database, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    seed_history(cli_db, label_by_review=False)
    src = tmp_path / "helpdesk.csv"
    src.write_text(LABELS)
    assert main(["label", str(src), "--operator", "maria", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Existing tickets matched: 4" in out and "New tickets: 1" in out and "dry run: nothing was written" in out
    with cli_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == 0

    assert main(["label", str(src), "--operator", "maria"]) == 0
    out = capsys.readouterr().out
    assert "imported 5 labels from helpdesk.csv: 4 existing tickets labelled, 1 new tickets" in out
    assert "1 row left out, label outside the taxonomy ('Refunds' ×1" in out
    assert "1 row left out, no text: row 6 (id N-2)" in out
    assert "The local model retrained on 5 operator labels (billing 2, technical 1, product_feedback 1, " \
           "account 1); out-of-fold accuracy on them" in out
    with cli_db.read() as s:
        audit = s.execute(select(Correction.source, Correction.operator, Correction.file)).all()
        assert {tuple(a) for a in audit} == {("import", "maria", "helpdesk.csv")} and len(audit) == 5
        assert s.scalar(select(func.count()).select_from(Ticket)) == 5

    assert main(["label", str(src), "--operator", "maria", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["matched"], again["unchanged"], again["new"], again["unknown_label"], again["no_text"]) == \
        (5, 5, 0, 1, 1)
    with cli_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == 5

    # the imported labels are what the quality report measures on, and it says where they came from
    assert main(["quality", "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["label_sources"] == {"import": 4} and "4 imported from labelled files" in q["measured_on"]
    assert q["per_model"][0]["accuracy"] == 0.5


def test_label_a_file_of_ids_and_labels_only(cli_db: Database, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A helpdesk export of final categories: no text column, every known row matched by id; unknown ids are
    reported with examples and nothing is written for them."""
    imp = runs.start_run(cli_db, [("H-1", "I was charged twice"), ("H-2", "the app crashes")], source="t",
                         actor=LEAD)
    src = tmp_path / "final.csv"
    src.write_text("ticket_id,final_category\nH-1,billing\nH-2,technical\nH-404,account\nH-405,billing\n")
    assert main(["label", str(src), "--operator", "maria", "--no-retrain"]) == 0
    out = capsys.readouterr().out
    assert "Existing tickets matched: 2 (2 to label, 2 by id and 0 by text" in out and "New tickets: 0" in out
    assert "2 rows left out, no text: row 3 (id H-404): no ticket has this id; row 4 (id H-405): no ticket " \
           "has this id" in out
    assert "imported 2 labels from final.csv: 2 existing tickets labelled, 0 new tickets" in out
    with cli_db.read() as s:
        tickets = {t.external_id: (t.id, t.text, t.category, t.label_source) for t in s.scalars(select(Ticket))}
        corrections = s.execute(select(Correction.ticket_id, Correction.new_label, Correction.file)).all()
    assert tickets == {"H-1": (imp.ticket_ids[0], "I was charged twice", "billing", "operator"),
                       "H-2": (imp.ticket_ids[1], "the app crashes", "technical", "operator")}
    assert sorted(map(tuple, corrections)) == [(imp.ticket_ids[0], "billing", "final.csv"),
                                                (imp.ticket_ids[1], "technical", "final.csv")]

    only_unknown = tmp_path / "unknown.jsonl"
    only_unknown.write_text(json.dumps({"id": "H-9", "category": "billing"}) + "\n")
    assert main(["label", str(only_unknown), "--operator", "maria", "--json"]) == 2  # nothing importable
    out = json.loads(capsys.readouterr().out)
    assert (out["no_text"], out["left_out"]["no_text"]["examples"], out["columns"]["text"]) == \
        (1, ["row 1 (id H-9): no ticket has this id"], None)
    with cli_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 2


def test_label_json_output_and_bad_input(cli_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "l.jsonl"
    src.write_text(json.dumps({"body": "my card was declined", "category": "billing"}) + "\n")
    assert main(["label", str(src), "--operator", "lee", "--json", "--no-retrain"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["created"], out["labelled"], out["learned"], out["columns"]) == \
        (1, 0, None, {"text": "body", "id": None, "label": "category"})
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,Refunds\n,billing\n")
    assert main(["label", str(bad), "--operator", "lee"]) == 2  # nothing importable
    assert "nothing to import" in capsys.readouterr().out
    assert main(["label", str(tmp_path / "missing.csv"), "--operator", "lee"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["label", str(bad), "--operator", "lee", "--label-column", "kind"]) == 2
    assert "no label column 'kind'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["label", str(bad)])  # --operator is required: every label says who
    assert exc.value.code == 2
