import asyncio
from decimal import Decimal

from db.engine import Database
from tests.support.actors import LEAD, op
from tests.support.fakes import ScriptedProvider
from triage import review, taxonomy
from triage.quality import measure as quality
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()
T1 = {"a": ("billing", 0.95), "b": ("billing", 0.9), "c": ("account", 0.5), "d": ("technical", 0.4)}
T2 = {"c": ("billing", 0.9), "d": ("technical", 0.8)}
TRUTH = {"a": "billing", "b": "account", "c": "billing", "d": "technical"}


def test_accuracy_calibration_flips_and_whatif_against_operator_labels(db: Database) -> None:
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: T1[t]),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: T2[t]), TAX)
    imp = runs.start_run(db, [(None, k) for k in T1], source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    assert quality.measure(db).n_tickets == 0
    with db.read() as s:
        from db.models import Ticket

        versions = {t.id: t.version for t in s.query(Ticket)}
    for key, tid in zip(T1, imp.ticket_ids, strict=True):  # every label confirmed or corrected
        review.correct(db, tid, TRUTH[key], actor=op("op"), expected_version=versions[tid], taxonomy=TAX)
    q = quality.measure(db)
    tiers = {t["name"]: t for t in q.per_tier}
    assert q.n_tickets == 4
    assert tiers["Haiku"]["n"] == 4 and tiers["Haiku"]["accuracy"] == 0.5  # a and d right; b and c wrong
    assert tiers["Sonnet"]["n"] == 2 and tiers["Sonnet"]["accuracy"] == 1.0
    assert q.flips == {"escalated": 2, "flipped": 1, "sonnet_right": 1, "haiku_right": 0}
    at = {w["threshold"]: w for w in q.whatif}
    assert at[0.5]["escalation_rate"] == 0.25 and at[0.5]["accuracy"] == 0.5  # only d escalates; c stays wrong
    assert at[0.7]["escalation_rate"] == 0.5 and at[0.7]["accuracy"] == 0.75  # c and d escalate
    assert at[0.95]["escalation_rate"] == 0.75 and at[0.95]["replayed"] == 3  # b has no Sonnet answer to replay
    assert sum(r["n"] for r in q.reliability if r["name"] == "Haiku") == 4


def test_whatif_without_any_sonnet_answer_prices_haiku_alone(db: Database) -> None:
    """Labelled tickets that only Haiku answered (no key for Sonnet yet, or all confident): the what-if must
    still price them (it used to add a float to a Decimal and crash the page)."""
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.6)), None, TAX)
    imp = runs.start_run(db, [(None, "only haiku")], source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    with db.read() as s:
        from db.models import Ticket

        version = s.get_one(Ticket, imp.ticket_ids[0]).version
    review.correct(db, imp.ticket_ids[0], "billing", actor=op("op"), expected_version=version, taxonomy=TAX)
    q = quality.measure(db)
    assert [t["name"] for t in q.per_tier] == ["Haiku"]
    at = {w["threshold"]: w for w in q.whatif}
    assert at[0.6]["escalation_rate"] == 0 and at[0.6]["cost_per_ticket"] == Decimal("0.001")  # Haiku's cost
    assert at[0.65]["escalation_rate"] == 1.0 and at[0.65]["cost_per_ticket"] is None  # no Sonnet price known
