"""`triage demo`: fill a fresh database with the sample tickets so every page has something to show.

The local tier classifies part of the set for real. So that the spend and routing charts have a month of
history without an API key, the rest gets *simulated* Haiku/Sonnet calls: token counts from the real prompt,
priced with the real price table, dated over the last 30 days, and marked as demo (request ids `demo_...`,
ticket source `demo`). The dashboard says so wherever they are shown. A few operator corrections and a simulated
blind audit (drawn at AUDIT_RATE, most draws answered with the sample set's labels, a few left on the Audit page)
complete it, so every part of the routing story shows.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

from db import audit_sample, queue, reports, rollups, runs
from db import calls as db_calls
from db import story as db_story
from db.engine import Database
from triage import audit, privacy
from triage.access import Action, Actor, Role, require
from triage.domain import OK, CallResult, Usage
from triage.quality import calibrate
from triage.routing import prompts
from triage.routing.router import decide
from triage.settings import Settings
from triage.spend.pricing import PriceTable
from triage.taxonomy import Taxonomy

SOURCE = "demo"
DEMO_REQUEST_PREFIX = rollups.DEMO_REQUEST_PREFIX  # the rollups count these calls apart


def load_samples() -> list[dict[str, Any]]:
    text = resources.files("triage.samples").joinpath("tickets.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# How often the simulated answers are right, after published figures: Haiku within 2-4 points of Sonnet on
# classification overall (Anthropic's ticket-routing guide and cookbook put both in the 90s with examples), and
# Sonnet clearly better on the hard tickets, which are the ones Haiku is unsure of and sends it.
HARD_SHARE = 0.2
RIGHT = {(1, False): 0.94, (1, True): 0.72, (2, False): 0.95, (2, True): 0.85}  # (tier, hard): overall 89.6 / 93


def _simulated_call(tier: int, model: str, text: str, label: str, rnd: random.Random, taxonomy: Taxonomy,
                    prices: PriceTable, when: datetime, hard: bool) -> CallResult:
    correct = rnd.random() < RIGHT[tier, hard]
    category = label if correct else rnd.choice([c for c in taxonomy.names if c != label])
    if tier == 1 and hard:  # Haiku is unsure on the hard ones, right or not: most go on to Sonnet
        confidence = round(rnd.uniform(0.45, 0.74), 2)
    else:
        confidence = round(rnd.uniform(0.72, 0.99) if correct else rnd.uniform(0.45, 0.85), 2)
    usage = Usage(prompts.estimate_tokens(prompts.system_prompt(taxonomy) + prompts.user_message(text)),
                  rnd.randint(28, 60))
    return CallResult(tier, model, OK, category=category, confidence=confidence, model_returned=model,
                      reason=f"simulated demo answer: {category.replace('_', ' ')}", usage=usage,
                      cost_usd=prices.cost(model, usage, when), latency_ms=int(rnd.gauss(650 if tier == 1 else 1400,
                                                                                           150)),
                      request_id=f"{DEMO_REQUEST_PREFIX}{rnd.getrandbits(48):012x}", created_at=when)


def fill(db: Database, taxonomy: Taxonomy, *, actor: Actor, settings: Settings | None = None, days: int = 30,
         seed: int = 7, api_share: float = 0.7, local: bool = True) -> dict[str, Any]:
    """Load the demo (a lead's choice: it writes 315 sample tickets and simulated history); recorded in the audit
    trail with who loaded it."""
    require(actor, Action.LOAD_DEMO)
    settings = settings or Settings.from_env()
    with db.read() as s:
        if reports.status_counts(s).get("total"):
            raise ValueError("the database already has tickets: the demo fills only an empty database")
    rnd = random.Random(seed)
    prices = PriceTable.load(settings.prices_path)
    samples = [r for r in load_samples() if r["label"] in taxonomy]
    now = datetime.now(UTC)
    prepared = privacy.prepare_import(db, [(r["id"], r["text"]) for r in samples])  # as any import
    with db.transaction() as s:  # imported and claimed at once, so a running worker never picks them up
        run_id = runs.create_run(s, started_by="demo", source=SOURCE, mode="demo", threshold=settings.threshold)
        imported = queue.import_tickets(s, prepared.items, source=SOURCE, run_id=run_id, privacy=prepared.privacy,
                                        languages=prepared.languages)
        queue.claim_pending(s, "demo", len(samples), run_id)
    gold = {tid: r for tid, r in zip(imported.ticket_ids, samples, strict=True)}
    api_ids = [tid for tid in imported.ticket_ids if rnd.random() < api_share]
    with db.transaction() as s:
        for tid in api_ids:
            when = now - timedelta(days=rnd.uniform(0, days), hours=rnd.uniform(0, 4))
            text, label = gold[tid]["text"], gold[tid]["label"]
            hard = rnd.random() < HARD_SHARE
            calls = [_simulated_call(1, settings.tier1_model, text, label, rnd, taxonomy, prices, when, hard)]
            if (calls[0].confidence or 0.0) < settings.threshold:
                calls.append(_simulated_call(2, settings.tier2_model, text, label, rnd, taxonomy, prices,
                                             when + timedelta(seconds=2), hard))
            for c in calls:
                db_calls.record_call(s, tid, imported.run_id, c)
            db_calls.apply_outcome(s, tid, decide(calls, settings.threshold))
            queue.backdate_ticket(s, tid, when)
    n_local = 0
    if local:
        n_local = _classify_rest_locally(db, taxonomy, settings, [t for t in gold if t not in set(api_ids)],
                                         run_id, rnd, days)
    corrected = _correct_some(db, gold, taxonomy, rnd)
    audited = _audit_some(db, gold, actor, rnd)
    if local:  # learn from the demo's labels so Settings shows a trained local tier
        from triage.local import tier as local_tier
        from triage.local.embedder import shared

        local_tier.train_from_labels(db, taxonomy, shared())
    calibrate.refresh(db, trigger="demo", by=actor.identity)  # the demo's labels are enough for Haiku's map
    summary = {"tickets": len(samples), "api_simulated": len(api_ids), "local": n_local, "corrected": corrected,
               "audited": audited}
    with db.transaction() as s:
        runs.finish_idle_runs(s)
        audit.record(s, actor, audit.DEMO, **summary)
    return summary


AUDIT_RATE = 0.15  # the demo's blind audit draws more than the 3% default: 315 tickets would give a handful


def _audit_some(db: Database, gold: dict[int, dict[str, Any]], actor: Actor, rnd: random.Random,
                answer_share: float = 0.8) -> int:
    """The blind audit, simulated: the settled tickets drawn again at AUDIT_RATE (the rate recorded on each row,
    so the estimate is weighed by it), four in five of the drawn answered with the sample set's own label (as an
    operator reading the text would; an audit answer is an operator label, source `audit`), the rest left waiting
    on the Audit page. Returns how many were answered."""
    from triage.quality import unreviewed

    with db.transaction() as s:  # those an operator reviewed meanwhile (_correct_some) are no longer unreviewed
        unreviewed_ids = [t.id for t in queue.tickets_by_id(s, list(gold)).values() if t.label_source != "operator"]
        drawn = audit_sample.redraw(s, sorted(gold), AUDIT_RATE, rnd)  # every row at the one rate
    mine = set(unreviewed_ids)
    answers = [(tid, gold[tid]["label"]) for tid in drawn if tid in mine and rnd.random() < answer_share]
    done, _ = unreviewed.answer(db, answers, actor=actor, file="demo (simulated)")
    return len(done)


def _classify_rest_locally(db: Database, taxonomy: Taxonomy, settings: Settings, ticket_ids: list[int],
                           run_id: int, rnd: random.Random, days: int) -> int:
    from triage.local import tier as local
    from triage.local.embedder import shared

    embedder = shared()
    provider = local.LocalProvider(embedder, local.current_head(db, taxonomy, embedder))
    when = {tid: datetime.now(UTC) - timedelta(days=rnd.uniform(0, days)) for tid in ticket_ids}
    local.answer_and_record(db, provider, [(tid, run_id) for tid in ticket_ids], threshold=settings.threshold,
                            created_at=when)
    with db.transaction() as s:
        for tid, stamp in when.items():
            queue.backdate_ticket(s, tid, stamp)
    return len(ticket_ids)


def _correct_some(db: Database, gold: dict[int, dict[str, Any]], taxonomy: Taxonomy, rnd: random.Random,
                  limit: int = 40, confirm: int = 80) -> int:
    """Operators correct some wrong labels and confirm some right ones (the Quality page's ground truth)."""
    from triage import review

    with db.read() as s:
        tickets = queue.tickets_by_id(s, list(gold))
    wrong = [t for t in tickets.values() if t.category != gold[t.id]["label"]]
    right = [t for t in tickets.values() if t.category == gold[t.id]["label"]]
    rnd.shuffle(wrong)
    rnd.shuffle(right)
    # operators look at what Sonnet decided first (the dearest answers), so every path of the story has labels
    wrong.sort(key=lambda t: t.label_source != "tier2")
    right.sort(key=lambda t: t.label_source != "tier2")
    done = [(t, "demo correction") for t in wrong[:limit]] + [(t, "confirmed") for t in right[:confirm]]
    for t, note in done:
        simulated = Actor(rnd.choice(["dana", "li", "sam"]), Role.OPERATOR)  # the demo's made-up operators
        review.correct(db, t.id, gold[t.id]["label"], actor=simulated, expected_version=t.version, taxonomy=taxonomy,
                       note=note)
    with db.transaction() as s:  # reviewed within a day of arriving, as the history is dated
        when = {t.id: min(datetime.now(UTC), rollups.as_utc(t.created_at) + timedelta(hours=rnd.uniform(1, 20)))
                for t, _ in done}
        db_story.backdate_reviews(s, list(when), when)
    return min(limit, len(wrong))


def demo_cost(db: Database) -> Decimal:
    with db.read() as s:
        return reports.demo_cost(s)
