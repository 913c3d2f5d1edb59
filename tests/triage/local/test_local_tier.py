"""The offline tier: real model, real vectors, no network."""

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import ModelCall, Ticket, TicketVector
from tests.support.actors import LEAD, op
from triage import taxonomy
from triage.local import curve
from triage.local import head as H
from triage.local import tier as local
from triage.local.embedder import DIM, Embedder
from triage.routing import calibration
from triage.taxonomy import Taxonomy
from triage.work import runs, services

ROOT = Path(__file__).resolve().parents[3]
TAX = taxonomy.default()
# the same four intents under other names, so no built-in examples apply: descriptions only
RENAMED = {"billing": "payments", "technical": "bugs", "product_feedback": "ideas", "account": "access"}
SAMPLE_AUTHOR_VOICES = {"plain", "short", "other languages", "specific"}  # see triage/local/examples.py
EDITED = Taxonomy.from_pairs([(RENAMED[c.name], c.description) for c in TAX.categories])
DOC = " ".join((ROOT / "docs" / "classification.md").read_text(encoding="utf-8").split())  # folded, for phrases
TOL = 0.01  # the docs and the comments give two decimals; 0.01 covers that rounding and float noise between CPUs


def near(measured: float, stated: float) -> bool:
    return abs(measured - stated) <= TOL


def readme_curve_row(data: str) -> list[tuple[float, float]]:
    """docs/classification.md's learning-curve row whose data cell starts with `data`: (accuracy, ECE) at 0, 8, 32."""
    row = re.search(r"\| " + re.escape(data) + r"[^|]*\|([^|]+)\|([^|]+)\|([^|]+)\|", DOC)
    assert row, f"docs/classification.md has no learning-curve row for {data!r}"
    cells = [[float(v) for v in re.findall(r"\d\.\d+", cell)] for cell in row.groups()]
    assert all(len(c) == 2 for c in cells), cells
    return [(c[0], c[1]) for c in cells]


def test_the_model_runs_with_the_network_unreachable() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network is unreachable in this test')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from triage.local.embedder import Embedder\n"
        "v = Embedder().embed(['I was charged twice', 'the app crashes'])\n"
        "print(v.shape, round(float((v[0] ** 2).sum()), 4))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"(2, {DIM}) 1.0"


def test_embeddings_are_unit_length_and_semantic(embedder: Embedder) -> None:
    v = embedder.embed(["I was charged twice", "double billing on my credit card", "the app crashes on start", ""])
    assert v.shape == (4, DIM) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    long = embedder.embed(["refund " * 2000])  # truncated, not an error
    assert long.shape == (1, DIM)


def test_sample_set_is_large_varied_and_labelled() -> None:
    from triage.demo import load_samples

    rows = load_samples()
    assert len(rows) == 315 and len({r["text"] for r in rows}) == len(rows)
    assert "(`triage/samples/tickets.jsonl`, 315 tickets, SaaS)" in DOC
    assert set(Counter(r["label"] for r in rows)) == set(TAX.names)
    assert min(Counter(r["label"] for r in rows).values()) >= 70
    joined = " ".join(r["text"] for r in rows)
    for marker in ("Bonjour", "Hola", "Guten", "Olá", "Ignore all previous instructions", "</ticket>"):
        assert marker in joined


def test_zero_shot_accuracy_and_calibration_on_the_sample_set(
        embedder: Embedder, samples: tuple[list[dict[str, Any]], np.ndarray, np.ndarray]) -> None:
    rows, X, y = samples
    head = local.train_head(embedder, TAX, [])
    pred, conf = head.predict(X)
    correct = np.array(pred) == y
    # the docs: "mean confidence 0.78 against 0.84 right on the sample set"; the built-in examples are not in it
    assert "mean confidence 0.78 against 0.84 right on the sample set" in DOC
    assert near(correct.mean(), 0.84) and near(conf.mean(), 0.78), (correct.mean(), conf.mean())
    assert near(calibration.ece(conf, correct), 0.074)  # measured
    assert conf.mean() < correct.mean()  # on its own author's text the zero-shot rule errs on the side of doubt


def _voices(embedder: Embedder, names: set[str]) -> local.Seeds:
    seeds = local.seeds_for(embedder, TAX)
    keep = [i for i, g in enumerate(seeds.groups) if g == H.DESCRIPTION or g in names]
    return local.Seeds(seeds.X[keep], [seeds.labels[i] for i in keep], [seeds.groups[i] for i in keep], seeds.desc)


def _previous_design(seeds: local.Seeds) -> H.Head:
    """The example-trained head alone, calibrated on a random split of its examples (before issue 10)."""
    n = len(seeds.labels)
    return H.fit(seeds.X, seeds.labels, np.ones(n, np.float32), TAX.names, np.zeros(n, bool))


def _score(head: H.Head, X: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    pred, conf = head.predict(X)
    correct = np.array(pred) == y
    return float(correct.mean()), calibration.ece(conf, correct), float(conf.mean())


def test_zero_shot_confidence_is_honest_on_text_unlike_its_examples(
        embedder: Embedder, different_style: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Examples from the sample set's author only, scored on the second author's banking/e-commerce set."""
    X, y, style = different_style
    other_author = _voices(embedder, SAMPLE_AUTHOR_VOICES)
    ours, before = local.build_head(other_author, TAX, []), _previous_design(other_author)
    acc, ece, _ = _score(ours, X, y)
    old_acc, old_ece, _ = _score(before, X, y)
    assert near(acc, 0.817) and near(ece, 0.029), (acc, ece)  # measured
    assert near(old_acc, 0.810) and near(old_ece, 0.081), (old_acc, old_ece)  # the previous design, measured
    queries = style == "query"  # the hardest part: indirect questions that never name the category
    acc, ece, _ = _score(ours, X[queries], y[queries])
    old_acc, old_ece, _ = _score(before, X[queries], y[queries])
    # docs/classification.md: "0.15 on the set's indirect queries, against 0.06 now"
    assert "(0.15 on the set's indirect queries, against 0.06 now)" in DOC
    assert near(acc, 0.73) and near(ece, 0.06) and near(old_ece, 0.15), (acc, ece, old_ece)  # 0.73, 0.062 vs 0.146
    every_voice = local.build_head(local.seeds_for(embedder, TAX), TAX, [])
    acc, ece, _ = _score(every_voice, X, y)
    assert near(acc, 0.893) and near(ece, 0.081), (acc, ece)  # flattered: this author wrote 4 of the voices


def test_confidence_is_lower_on_text_unlike_the_examples(
        embedder: Embedder, different_style: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    X, y, style = different_style
    head = local.train_head(embedder, TAX, [])
    queries = style == "query"
    q_acc, _, q_conf = _score(head, X[queries], y[queries])
    m_acc, _, m_conf = _score(head, X[~queries], y[~queries])
    assert q_acc < m_acc and q_conf < m_conf - 0.03, (q_conf, m_conf)  # it knows which is harder
    assert near(q_acc, 0.86) and near(m_acc, 0.91) and near(q_conf, 0.78) and near(m_conf, 0.83)  # measured
    off_topic = embedder.embed(["what time does the match start tonight", "lorem ipsum dolor sit amet",
                                "asdf qwerty", "My cat likes to sleep on the sofa", "Recipe for banana bread?",
                                "The weather in Lisbon is lovely"])
    ours = head.predict(off_topic)[1]
    before = _previous_design(local.seeds_for(embedder, TAX)).predict(off_topic)[1]
    assert ours.max() < 0.8 and ours.mean() < 0.6 and before.max() > 0.95, (ours, before)
    # docs/classification.md: "the weather in Lisbon is lovely" drops from 0.97 to 0.79 confidence
    assert '("the weather in Lisbon is lovely") drops from 0.97 to 0.79 confidence' in DOC
    assert near(before[-1], 0.97) and near(ours[-1], 0.79), (before[-1], ours[-1])


def _curve(result: dict[str, Any]) -> list[tuple[float, float]]:
    return [(p["accuracy"], p["ece"]) for p in result["points"]]


def _all_near(measured: list[tuple[float, float]], stated: list[tuple[float, float]]) -> bool:
    return len(measured) == len(stated) and all(near(m, s) for got, want in zip(measured, stated, strict=True)
                                                for m, s in zip(got, want, strict=True))


def test_more_labels_lift_accuracy_on_the_held_out_part(
        embedder: Embedder, different_style: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    X, y, _ = different_style
    seeds = _voices(embedder, SAMPLE_AUTHOR_VOICES)

    def build(Xl: np.ndarray, labels: list[str]) -> H.Head:
        return local.build_head(seeds, TAX, [(x, lab, "operator") for x, lab in zip(Xl, labels, strict=True)])

    result = curve.learning_curve(build, X, list(y), sizes=(0, 8, 32), draws=3)
    assert result is not None
    acc = {p["per_category"]: p["accuracy"] for p in result["points"]}
    assert result["scored"] == 100 and [p["draws"] for p in result["points"]] == [3, 3, 3]
    assert acc[0] < acc[8] < acc[32] and acc[32] >= acc[0] + 0.06, acc
    assert all(p["accuracy_low"] <= p["accuracy"] <= p["accuracy_high"] for p in result["points"])
    measured, stated = _curve(result), readme_curve_row("the same, with only the *other* author's examples")
    assert _all_near(measured, stated), (measured, stated)  # the docs table's cross-author row


@pytest.mark.parametrize("data", ["sample set", "different-style set"])
def test_the_learning_curve_is_what_the_docs_table_states(embedder: Embedder,
                                                          samples: tuple[list[dict[str, Any]], np.ndarray, np.ndarray],
                                                          different_style: tuple[np.ndarray, np.ndarray, np.ndarray],
                                                          data: str) -> None:
    """The docs' first two rows: every voice of built-in examples, 3 draws, sizes 0, 8, 32 (bench_learning)."""
    X, y = (samples[1], samples[2]) if data == "sample set" else different_style[:2]
    seeds = local.seeds_for(embedder, TAX)

    def build(Xl: np.ndarray, labels: list[str]) -> H.Head:
        return local.build_head(seeds, TAX, [(x, lab, "operator") for x, lab in zip(Xl, labels, strict=True)])

    result = curve.learning_curve(build, X, list(y), sizes=(0, 8, 32), draws=3)
    assert result is not None
    measured, stated = _curve(result), readme_curve_row(data)
    assert _all_near(measured, stated), (measured, stated)


def test_an_edited_taxonomy_adapts_from_descriptions_and_labels_lift_it(
        embedder: Embedder, samples: tuple[list[dict[str, Any]], np.ndarray, np.ndarray]) -> None:
    rows, X, y = samples
    y2 = np.array([RENAMED[v] for v in y])
    rng = np.random.default_rng(3)
    train_idx = np.concatenate([rng.choice(np.where(y2 == c)[0], 32, replace=False) for c in EDITED.names])
    test_idx = np.setdiff1d(np.arange(len(y2)), train_idx)
    zero = local.train_head(embedder, EDITED, [])
    zero_acc = np.mean(np.array(zero.predict(X[test_idx])[0]) == y2[test_idx])
    assert near(zero_acc, 0.759), zero_acc  # descriptions alone, measured
    learned = local.train_head(embedder, EDITED, [(X[i], y2[i], "operator") for i in train_idx])
    learned_acc = np.mean(np.array(learned.predict(X[test_idx])[0]) == y2[test_idx])
    assert near(learned_acc, 0.840) and learned_acc >= zero_acc + 0.07, (zero_acc, learned_acc)  # measured
    assert learned.metrics["human_n"] == 128 and near(learned.metrics["human_ece"], 0.057)  # measured
    assert learned.metrics["calibrated_on"] == "operator labels"


def test_temperature_scaling_fixes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    logits = rng.normal(size=(2000, 4))
    logits[np.arange(2000), y] += 1.0
    logits *= 6  # far too sharp
    T = H.fit_temperature(logits, y)
    assert T > 2
    before = H.softmax(logits)
    after = H.softmax(logits / T)
    correct = before.argmax(1) == y
    assert calibration.ece(after.max(1), correct) < calibration.ece(before.max(1), correct)


def test_head_round_trips_through_json(embedder: Embedder) -> None:
    head = local.train_head(embedder, TAX, [])
    again = H.Head.from_dict(head.to_dict())
    v = embedder.embed(["refund please"])
    assert np.allclose(head.proba(v), again.proba(v), atol=1e-6)


def test_no_key_classifies_locally_and_vectors_are_stored_once(db: Database, embedder: Embedder,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    calls = {"n": 0}
    real = embedder.embed

    def counting(texts: list[str], **kw: Any) -> np.ndarray:
        calls["n"] += len(texts)
        return real(texts, **kw)

    monkeypatch.setattr(embedder, "embed", counting)
    monkeypatch.setattr(local, "_seeds", {})  # as in a fresh process: the seed rows are not embedded yet
    imp = runs.start_run(db, [(None, "I was charged twice for my plan, refund please"),
                                  (None, "asdf qwerty"), (None, "The export button crashes the app")], source="t",
                         actor=LEAD)
    n = services.classify_locally(db, run_id=imp.run_id)
    assert n == 3
    seeds = len(local.seed_examples(TAX)[0])
    assert calls["n"] == 3 + seeds  # the seed rows once (the zero-shot head is built once, stored), tickets once each
    with db.read() as s:
        tickets = s.scalars(select(Ticket).order_by(Ticket.id)).all()
        assert [t.label_source for t in tickets] == ["tier0"] * 3
        assert tickets[0].category == "billing" and tickets[2].category == "technical"
        # sure of the two real tickets; the gibberish is unsure, so it waits for an operator in the review queue
        assert [(t.status, t.category) for t in tickets] == [
            ("classified", "billing"), ("needs_review", "product_feedback"), ("classified", "technical")]
        assert s.scalar(select(func.count()).select_from(TicketVector)) == 3
        c = s.scalars(select(ModelCall)).first()
        assert c is not None
        assert (c.tier, c.model, c.cost_pico) == (0, "local-minilm", 0)
    before = calls["n"]
    local.retrain(db, TAX, embedder, actor=LEAD)
    assert calls["n"] == before  # retraining re-embeds nothing stored (seeds are embedded once per process)


def test_retraining_learns_from_operator_labels_and_gates_tier0(
        db: Database, embedder: Embedder, samples: tuple[list[dict[str, Any]], np.ndarray, np.ndarray]) -> None:
    from triage import review

    rows, X, y = samples
    imp = runs.start_run(db, [(r["id"], r["text"]) for r in rows[:120]], source="t", actor=LEAD)
    services.classify_locally(db, run_id=imp.run_id)
    head: H.Head | None  # maybe_retrain below may give none
    head = local.current_head(db, TAX, embedder)
    assert local.tier0_active(db, head.metrics) == (False, "off")
    local.save_tier0_config(db, actor=LEAD, enabled=True, target_accuracy=0.8, min_labels=30)
    assert "waiting for 30 operator labels" in local.tier0_active(db, head.metrics)[1]
    with db.read() as s:
        tickets = {t.id: t for t in s.scalars(select(Ticket))}
    for tid, r in zip(imp.ticket_ids[:60], rows[:60], strict=True):
        review.correct(db, tid, r["label"], actor=op("lead"), expected_version=tickets[tid].version, taxonomy=TAX)
    head = local.maybe_retrain(db, TAX, embedder, every=50)
    assert head is not None and head.metrics["labels"]["operator"] == 60 and head.metrics["human_n"] == 60
    stored = local.stored_metrics(db)
    assert stored is not None
    learning = stored["learning_curve"]  # measured once, at training time, on operator labels
    assert learning["labels"] == 60 and learning["points"][0]["per_category"] == 0
    acc = head.metrics["human_accuracy"]
    assert near(acc, 59 / 60), acc  # measured: out of fold, on the 60 operator labels
    assert local.tier0_active(db, head.metrics) == (True, "on: accuracy 98% on 60 operator labels")  # target 80%
    local.save_tier0_config(db, actor=LEAD, target_accuracy=0.99)
    assert local.tier0_active(db, head.metrics) == (
        False, "accuracy 98% on 60 operator labels is under the target 99%")
    local.save_tier0_config(db, actor=LEAD, target_accuracy=acc)  # reaching the target exactly is enough
    assert local.tier0_active(db, head.metrics) == (True, "on: accuracy 98% on 60 operator labels")
    assert local.maybe_retrain(db, TAX, embedder, every=50) is None  # nothing new since


@pytest.mark.parametrize("bad", ["shipping", "Billing department"])  # "Billing" is billing (any case)
def test_eval_refuses_labels_outside_the_taxonomy(tmp_path: Path, bad: str) -> None:
    from triage import evaluation

    gold = tmp_path / "g.csv"
    gold.write_text(f"text,label\nmy card was charged,billing\nwhere is my parcel,{bad}\n")
    with pytest.raises(ValueError, match=f"labels outside the taxonomy: '{bad}'"):
        evaluation.read_gold(str(gold), TAX)


def test_eval_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from triage.cli import main

    monkeypatch.setenv("TRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'never.db'}")
    gold = tmp_path / "g.jsonl"
    gold.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in [
        ("I was charged twice, please refund", "billing"), ("The app crashes when I export", "technical"),
        ("Please add dark mode", "product_feedback"), ("I forgot my password", "account")]))
    assert main(["eval", "--gold", str(gold), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"n", "accuracy", "macro_f1", "ece", "coverage"} <= out.keys()
    assert out["n"] == 4 and out["accuracy"] == 1.0
    assert [c["threshold"] for c in out["coverage"]] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert not (tmp_path / "never.db").exists()  # the working database is not touched
    assert main(["eval", "--gold", str(gold)]) == 0
    assert "macro-F1" in capsys.readouterr().out
