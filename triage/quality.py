"""How good are the models, measured against operators: accuracy, agreement, calibration, and what another
escalation threshold would have done (replayed on stored answers, no new calls)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from db import quality as q
from db.engine import Database
from triage.local.head import expected_calibration_error
from triage.pricing import from_pico

TIER_NAME = {0: "local model", 1: "Haiku", 2: "Sonnet"}


@dataclass
class Quality:
    n_tickets: int
    per_tier: list[dict]  # tier, model, n, accuracy, ece
    reliability: list[dict]  # tier, bin_mid, confidence, accuracy, n
    flips: dict  # Sonnet disagreed with Haiku: how often the operator sided with Sonnet
    whatif: list[dict]  # threshold, escalation_rate, accuracy, cost_per_ticket


def _latest_per_tier(rows: list[dict]) -> dict[int, dict[int, dict]]:
    """From labelled calls in call order: each ticket's latest answer per tier."""
    by_ticket: dict[int, dict[int, dict]] = {}
    for r in rows:
        by_ticket.setdefault(r["ticket_id"], {})[r["tier"]] = r  # rows are in call order: the latest wins
    return by_ticket


def data_version(db: Database) -> int:
    """Changes whenever `measure` could give another answer (an operator label, a call on a labelled ticket)."""
    with db.read() as s:
        return q.labels_version(s)


def measure(db: Database, bins: int = 10) -> Quality:
    """Measured on the newest labelled tickets' answers (up to db.quality.LIMIT answers)."""
    with db.read() as s:
        rows = q.labelled_answers(s)
    tickets: dict[int, dict[int, dict]] = {}
    for r in rows:
        tickets.setdefault(r["ticket_id"], {})[r["tier"]] = r
    return from_answers(tickets, bins)


def from_answers(tickets: dict[int, dict[int, dict]], bins: int = 10) -> Quality:
    """The figures from {ticket: {tier: its latest answer (truth, label, confidence, cost_pico)}}."""
    per_tier, reliability = [], []
    for tier in (0, 1, 2):
        answers = [t[tier] for t in tickets.values() if tier in t and t[tier]["label"] is not None]
        if not answers:
            continue
        conf = np.array([a["confidence"] or 0.0 for a in answers])
        correct = np.array([a["label"] == a["truth"] for a in answers])
        per_tier.append({"tier": tier, "name": TIER_NAME[tier], "n": len(answers),
                         "accuracy": float(correct.mean()), "ece": expected_calibration_error(conf, correct),
                         "mean_confidence": float(conf.mean())})
        edges = np.linspace(0, 1, bins + 1)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            m = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
            if m.any():
                reliability.append({"tier": tier, "name": TIER_NAME[tier], "bin_mid": float((lo + hi) / 2),
                                    "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean()),
                                    "n": int(m.sum())})
    both = [t for t in tickets.values() if 1 in t and 2 in t and t[1]["label"] and t[2]["label"]]
    flipped = [t for t in both if t[1]["label"] != t[2]["label"]]
    flips = {"escalated": len(both), "flipped": len(flipped),
             "sonnet_right": sum(t[2]["label"] == t[2]["truth"] for t in flipped),
             "haiku_right": sum(t[1]["label"] == t[1]["truth"] for t in flipped)}
    return Quality(len(tickets), per_tier, reliability, flips, _whatif(tickets))


def _whatif(tickets: dict[int, dict[int, dict]]) -> list[dict]:
    """Replay: escalate when Haiku's confidence is under t; use Sonnet's stored answer where there is one."""
    haiku = [t for t in tickets.values() if 1 in t and t[1]["label"] is not None]
    if not haiku:
        return []
    sonnet_pico = [t[2]["cost_pico"] for t in tickets.values() if 2 in t]
    avg_sonnet = from_pico(sum(sonnet_pico)) / len(sonnet_pico) if sonnet_pico else None  # exact sums
    haiku_cost = from_pico(sum(x[1]["cost_pico"] for x in haiku)) / len(haiku)
    conf = np.array([x[1]["confidence"] or 0.0 for x in haiku])
    has_sonnet = np.array([2 in x for x in haiku])
    haiku_right = np.array([x[1]["label"] == x[1]["truth"] for x in haiku])
    sonnet_right = np.array([2 in x and x[2]["label"] == x[1]["truth"] for x in haiku])
    out = []
    for t in [round(0.5 + 0.05 * i, 2) for i in range(10)]:
        escalate = conf < t
        answered = ~escalate | has_sonnet  # an escalated ticket without a Sonnet answer cannot be replayed
        n_escalated, n_answered = int(escalate.sum()), int(answered.sum())
        right = int(np.where(escalate, sonnet_right, haiku_right)[answered].sum())
        cost = haiku_cost + (avg_sonnet or Decimal(0)) * n_escalated / len(haiku)
        out.append({"threshold": t, "escalation_rate": n_escalated / len(haiku),
                    "accuracy": right / n_answered if n_answered else None, "replayed": n_answered,
                    "cost_per_ticket": cost if avg_sonnet is not None or not n_escalated else None})
    return out
