"""Schema behaviour on SQLite and PostgreSQL: dedupe, audit trail, optimistic corrections, queue, reports."""

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from db import calls, queue, reports
from db.engine import Database
from db.models import Base, Correction, ModelCall, Ticket
from db.queue import Imported
from tests.support import oracles
from tests.support.actors import LEAD, op
from tests.support.fakes import ScriptedProvider, error
from triage import domain, errors, review, taxonomy
from triage.domain import CallResult, Usage, to_pico
from triage.routing.router import Router
from triage.spend.pricing import PriceTable
from triage.work import pipeline, runs

TAX = taxonomy.default()


def classify(db: Database, table1: Mapping[str, Any], table2: Mapping[str, Any] | None = None,
             items: Sequence[tuple[str | None, str]] | None = None) -> Imported:
    items = items or [(None, f"{k}: text") for k in table1]
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: table1[t.split(":")[0]]),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: (table2 or {})[t.split(":")[0]]), TAX)
    imp = runs.start_run(db, items, source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id, concurrency=4))
    return imp


def version_of(db: Database, tid: int) -> int:
    with db.read() as s:
        return s.get_one(Ticket, tid).version


def test_migrated_schema_matches_models(anydb: Database) -> None:
    with anydb.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_dedupe_on_reimport(anydb: Database) -> None:
    first = runs.start_run(anydb, [("A", "same text"), ("B", "same text"), (None, "other")], source="f.csv", actor=LEAD)
    again = runs.start_run(anydb, [("A", "same   text "), (None, "other"), (None, "new")], source="f.csv", actor=LEAD)
    assert len(first.new_ids) == 3 and len(again.new_ids) == 1 and len(again.known_ids) == 2
    with anydb.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 4


def test_audit_trail_and_derived_label(anydb: Database) -> None:
    imp = classify(anydb, {"a": ("billing", 0.9)})
    tid = imp.ticket_ids[0]
    v = review.correct(anydb, tid, "account", actor=op("alice"), expected_version=version_of(anydb, tid),
                       taxonomy=TAX, note="login issue really")
    review.correct(anydb, tid, "technical", actor=op("bob"), expected_version=v, taxonomy=TAX)
    d = review.detail(anydb, tid, actor=LEAD)
    assert d is not None
    assert d.ticket.category == "technical" and d.ticket.label_source == "operator" and d.ticket.corrected
    assert [(h["operator"], h["from"], h["to"]) for h in d.history] == [
        ("alice", "billing", "account"), ("bob", "account", "technical")]
    assert d.history[0]["note"] == "login issue really" and len(d.calls) == 1
    with pytest.raises(ValueError, match="not a category"):
        review.correct(anydb, tid, "shipping", actor=op("bob"), expected_version=v + 1, taxonomy=TAX)


def test_second_of_two_concurrent_corrections_gets_a_clear_conflict(anydb: Database) -> None:
    imp = classify(anydb, {"a": ("billing", 0.9)})
    tid = imp.ticket_ids[0]
    seen = version_of(anydb, tid)  # both operators loaded the same version
    review.correct(anydb, tid, "account", actor=op("alice"), expected_version=seen, taxonomy=TAX)
    with pytest.raises(errors.Conflict, match=r"changed by alice at \d{4}-\d\d-\d\d .*reload"):
        review.correct(anydb, tid, "technical", actor=op("bob"), expected_version=seen, taxonomy=TAX)
    with anydb.read() as s:
        assert s.get_one(Ticket, tid).category == "account"
        assert s.scalar(select(func.count()).select_from(Correction)) == 1


def test_bulk_corrections_report_conflicts_and_save_the_rest(anydb: Database) -> None:
    imp = classify(anydb, {"a": ("billing", 0.9), "b": ("billing", 0.9)})
    a, b = imp.ticket_ids
    va, vb = version_of(anydb, a), version_of(anydb, b)
    review.correct(anydb, b, "account", actor=op("carol"), expected_version=vb, taxonomy=TAX)
    res = review.correct_many(anydb, [(a, "technical", va), (b, "technical", vb)], actor=op("dave"), taxonomy=TAX)
    assert res.saved == [a] and len(res.conflicts) == 1 and "carol" in res.conflicts[0]


def test_review_filters_sorting_and_pages(anydb: Database) -> None:
    imp = classify(anydb, {
        "a": ("billing", 0.95), "b": ("billing", 0.5), "c": error(), "d": ("account", 0.4),
        "e": {"outcome": "unknown_label", "category": "unknown"},
    }, {"b": ("technical", 0.9), "d": ("account", 0.6), "e": {"outcome": "refusal"}})
    ids = dict(zip("abcde", imp.ticket_ids, strict=True))

    def page_ids(**kw: Any) -> list[int]:
        return [r.id for r in review.page(anydb, domain.ReviewFilter(**kw), actor=LEAD).rows]

    assert page_ids(reasons=("failed",)) == [ids["c"]]
    assert page_ids(reasons=("disagreement",)) == [ids["b"]]
    assert page_ids(reasons=("low_confidence",)) == [ids["d"]]
    assert set(page_ids(reasons=("unknown",))) == {ids["e"]}
    assert page_ids(categories=("billing",)) == [ids["a"]]
    everything = page_ids()
    assert everything[:2] == sorted([ids["c"], ids["e"]])  # unlabelled first, then by confidence
    assert everything[2:] == [ids["d"], ids["b"], ids["a"]]
    v = version_of(anydb, ids["a"])
    review.correct(anydb, ids["a"], "account", actor=op("x"), expected_version=v, taxonomy=TAX)
    assert page_ids(corrected=True) == [ids["a"]] and ids["a"] not in page_ids(corrected=False)
    assert page_ids(created_from=date.today() + timedelta(days=1)) == []
    p = review.page(anydb, domain.ReviewFilter(), number=1, size=2, actor=LEAD)
    assert p.total == 5 and p.pages == 3 and len(p.rows) == 2


def test_claims_are_disjoint_across_concurrent_workers(anydb: Database) -> None:
    runs.start_run(anydb, [(None, f"t{i}") for i in range(20)], source="t", actor=LEAD)
    with anydb.transaction() as s1:
        got1 = queue.claim_pending(s1, "w1", 8)
        # a second worker claims while the first transaction is still open (SKIP LOCKED on PostgreSQL;
        # on SQLite the second writer waits for the first)
        if anydb.dialect == "postgresql":
            with anydb.transaction() as s2:
                got2 = queue.claim_pending(s2, "w2", 8)
    if anydb.dialect != "postgresql":
        with anydb.transaction() as s2:
            got2 = queue.claim_pending(s2, "w2", 8)
    assert len(got1) == 8 and len(got2) == 8 and not {r.ticket_id for r in got1} & {r.ticket_id for r in got2}


def test_spend_reports_are_exact_and_reproducible_from_rows(anydb: Database) -> None:
    prices = PriceTable.default()
    imp = runs.start_run(anydb, [(None, "x"), (None, "y")], source="t", actor=LEAD)
    days = [datetime(2026, 11, d, 12, tzinfo=UTC) for d in (2, 3, 9)]
    with anydb.transaction() as s:
        for i, when in enumerate(days):
            for tier, model in ((1, "claude-haiku-5-5"), (2, "claude-sonnet-5-5")):
                u = Usage(1000 + i, 100 + i, cache_read_tokens=50)
                c = CallResult(tier, model, "ok", category="billing", confidence=0.9, usage=u,
                               cost_usd=prices.cost(model, u, when), latency_ms=100 * tier, created_at=when)
                calls.record_call(s, imp.ticket_ids[i % 2], None, c)
    with anydb.read() as s:
        daily = reports.spend_by_day(s)
        assert [r["day"] for r in daily] == ["2026-11-02", "2026-11-02", "2026-11-03", "2026-11-03",
                                             "2026-11-09", "2026-11-09"]
        weekly = reports.spend_by_week(s)
        assert [w["week"] for w in weekly] == ["2026-11-02", "2026-11-02", "2026-11-09", "2026-11-09"]
        assert sum(r["cost_usd"] for r in daily) == sum(w["cost_usd"] for w in weekly)
        assert [r["day"] for r in reports.spend_by_day(s, date(2026, 11, 3), date(2026, 11, 3))] == ["2026-11-03"] * 2
        for row in s.scalars(select(ModelCall)):  # the price table and the row's usage give its cost back
            u = Usage(row.input_tokens, row.output_tokens, row.cache_write_5m_tokens, row.cache_write_1h_tokens,
                      row.cache_read_tokens, row.service_tier, row.inference_geo)
            assert to_pico(prices.cost(row.model, u, row.created_at)) == row.cost_pico
        assert reports.status_counts(s)["total"] == 2
        assert len(reports.routing_by_day(s)) == 3 and len(oracles.latencies_from_calls(s)) == 6
        assert sum(n for _, _, n in reports.latency_histogram(s)) == 6
        assert reports.total_cost_pico(s) == sum(to_pico(r["cost_usd"]) for r in daily)
        from_calls = reports.spend_by_day_from_calls(s)
        assert [(r["day"], r["model"], r["tier"], r["calls"], r["cost_pico"]) for r in from_calls] == [
            (r["day"], r["model"], r["tier"], r["calls"], to_pico(r["cost_usd"])) for r in daily]
    with anydb.transaction() as s:
        assert reports.rebuild_rollups(s) == {"spend_daily": 6, "routing_daily": 3, "latency_daily": 6,
                                              "cache_daily": 6, "labelled_answers": 0, "path_daily": 1}
    with anydb.read() as s:
        assert reports.spend_by_day(s) == daily


def test_review_page_counts_matches_only_so_far_past_itself(anydb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A count of every match scans every ticket on each filter change: pages count a bounded distance ahead,
    exact when fewer match, and say "more" otherwise."""
    from triage.domain import ReviewFilter

    runs.start_run(anydb, [(None, f"ticket {i}") for i in range(120)], source="t", actor=LEAD)
    monkeypatch.setattr(review, "COUNT_AHEAD", 30)
    first = review.page(anydb, ReviewFilter(), 0, size=10, actor=LEAD)
    assert (first.total, first.more, first.pages, len(first.rows)) == (30, True, 3, 10)
    later = review.page(anydb, ReviewFilter(), 9, size=10, actor=LEAD)  # counting reaches the end: exact
    assert (later.total, later.more, later.pages, len(later.rows)) == (120, False, 12, 10)
    monkeypatch.setattr(review, "COUNT_AHEAD", 10_000)
    whole = review.page(anydb, ReviewFilter(), 0, actor=LEAD)
    assert (whole.total, whole.more) == (120, False)


def test_review_pages_keep_the_least_confident_first_order(anydb: Database) -> None:
    """Two index walks (no confidence, then by confidence) give exactly the one-sort order, page by page."""
    from sqlalchemy import update

    from db import review as db_review
    from triage.domain import ReviewFilter

    imp = runs.start_run(anydb, [(None, f"ticket {i}") for i in range(57)], source="t", actor=LEAD)
    with anydb.transaction() as s:
        for i, tid in enumerate(imp.ticket_ids):  # a third without a confidence, ties among the rest
            conf = None if i % 3 == 0 else round((i * 7 % 10) / 10, 1)
            s.execute(update(Ticket).where(Ticket.id == tid).values(confidence=conf, status="classified"))
    with anydb.read() as s:
        everything = [r.id for r in s.execute(select(Ticket.id).order_by(Ticket.confidence.asc().nulls_first(),
                                                                           Ticket.id))]
        for size in (5, 19, 50):
            pages = [db_review.review_page(s, ReviewFilter(), p, size) for p in range(-(-57 // size) + 1)]
            assert [r.id for page in pages for r in page] == everything, size
            assert pages[-1] == []
