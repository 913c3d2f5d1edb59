"""The few-shot queries on SQLite and PostgreSQL: operator-labelled examples, a ticket's stored vector by text, the
labels stamp, and the Spend page's sums over calls with examples or cache tokens (days, bands, dates)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from db import calls as db_calls
from db import fewshot, vectors
from db.engine import Database
from tests.support.actors import LEAD
from triage import domain as base
from triage import ingest, labels, taxonomy
from triage.domain import CallResult, Usage
from triage.work import runs

TAX = taxonomy.default()
DAY = datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC)


def test_examples_vectors_and_the_labels_stamp(anydb: Database) -> None:
    imp = runs.start_run(anydb, [(None, "plain ticket"), (None, "refund me  please")], source="t", actor=LEAD)
    with anydb.read() as s:
        assert fewshot.operator_labelled(s, TAX.names) == [] and fewshot.labels_stamp(s) == (0, 0)
    labels.import_labels(anydb, ingest.parse_labelled("text,label\nrefund me please,billing\n", "csv"), TAX,
                         file="f.csv", actor=LEAD, retrain=False)
    with anydb.transaction() as s:
        vectors.store(s, {imp.ticket_ids[1]: b"\x00\x00\x80\x3f"}, "m")
    with anydb.read() as s:
        ((tid, text, label, th),) = fewshot.operator_labelled(s, TAX.names)
        assert th is not None
        assert (tid, label) == (imp.ticket_ids[1], "billing")
        assert fewshot.same_text(s, th, "m") == ([tid], b"\x00\x00\x80\x3f")
        assert fewshot.same_text(s, th, "other model") == ([tid], None)
        assert fewshot.labels_stamp(s)[0] == 1 and fewshot.count_operator_labelled(s, TAX.names) == 1


def test_sums_per_day_band_and_kind_over_the_chosen_dates_only(anydb: Database) -> None:
    imp = runs.start_run(anydb, [(None, f"t{i}") for i in range(5)], source="t", actor=LEAD)
    calls = [(DAY, 11, Usage(100, 10, 600, 0, 0)), (DAY, 11, Usage(90, 10, 0, 0, 600)),
             (DAY + timedelta(microseconds=1), 11, Usage(80, 10, 0, 0, 600)),  # the next UTC day
             (DAY, None, Usage(400, 10)),  # neither examples nor cache: not read
             (DAY, 11, Usage(200_000, 10))]  # the dearer band
    with anydb.transaction() as s:
        for tid, (when, n, u) in zip(imp.ticket_ids, calls, strict=True):
            db_calls.record_call(s, tid, imp.run_id, CallResult(1, "claude-haiku-5-5", base.OK, category="billing",
                                                             confidence=0.9, usage=u, cost_usd=Decimal("0.0001"),
                                                             examples=n, created_at=when))
    with anydb.read() as s:
        rows = fewshot.examples_and_cache(s, date(2026, 11, 20), date(2026, 11, 20), [100_000])
        later = fewshot.examples_and_cache(s, date(2026, 11, 21), date(2026, 11, 21), [100_000])
        totals = fewshot.tier1_totals(s, date(2026, 11, 20), date(2026, 11, 20))
    got = sorted((r["day"], r["band"], r["calls"], r["examples"], r["cache_write_5m_tokens"], r["cache_read_tokens"])
                 for r in rows)
    assert got == [("2026-11-20", 0, 2, 22, 600, 600), ("2026-11-20", 1, 1, 11, 0, 0)]
    assert [(r["day"], r["calls"], r["cache_read_tokens"]) for r in later] == [("2026-11-21", 1, 600)]
    assert totals == {"claude-haiku-5-5": {"calls": 4, "prompt_tokens": 100 + 600 + 90 + 600 + 400 + 200_000,
                                           "cost_pico": 4 * 10**8}}
