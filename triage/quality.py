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
    by_ticket: dict[int, dict[int, dict]] = {}
    for r in rows:
        by_ticket.setdefault(r["ticket_id"], {})[r["tier"]] = r  # rows are in call order: the latest wins
    return by_ticket


def data_version(db: Database) -> int:
    """Changes whenever `measure` could give another answer (an operator label, a call on a labelled ticket)."""
    with db.read() as s:
        return q.labels_version(s)


def measure(db: Database, bins: int = 10) -> Quality:
    with db.read() as s:
        rows = q.labelled_calls(s)
    tickets = _latest_per_tier(rows)
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
    sonnet_costs = [from_pico(t[2]["cost_pico"]) for t in tickets.values() if 2 in t]
    avg_sonnet = sum(sonnet_costs) / len(sonnet_costs) if sonnet_costs else None
    out = []
    for t in [round(0.5 + 0.05 * i, 2) for i in range(10)]:
        escalate = [x for x in haiku if (x[1]["confidence"] or 0.0) < t]
        answered = [x for x in haiku if (x[1]["confidence"] or 0.0) >= t or 2 in x]
        right = sum((x[2] if (x[1]["confidence"] or 0.0) < t and 2 in x else x[1])["label"] == x[1]["truth"]
                    for x in answered)
        haiku_cost = sum(from_pico(x[1]["cost_pico"]) for x in haiku) / len(haiku)
        cost = haiku_cost + (avg_sonnet or Decimal(0)) * len(escalate) / len(haiku)
        out.append({"threshold": t, "escalation_rate": len(escalate) / len(haiku),
                    "accuracy": right / len(answered) if answered else None, "replayed": len(answered),
                    "cost_per_ticket": cost if avg_sonnet is not None or not escalate else None})
    return out
