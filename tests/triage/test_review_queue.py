"""The review queue's services for issue 27 items 1-3: undo of the last save (version-checked, on the trail),
every ticket matching a filter labelled at once (audited with the filter), the keyboard loop's next ticket."""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from db.engine import Database
from db.models import AuditEvent, Correction, Ticket
from tests.support.actors import op
from triage import review, taxonomy
from triage.domain import ReviewFilter, ReviewRow
from triage.work import runs

TAX = taxonomy.default()
ALICE = op("alice")


def seed(db: Database, texts: Sequence[str]) -> list[int]:
    imp = runs.start_run(db, [(None, t) for t in texts], source="t.csv", actor=ALICE)
    return imp.ticket_ids


def version(db: Database, tid: int) -> int:
    with db.read() as s:
        return s.get_one(Ticket, tid).version


def test_undo_puts_the_label_back_and_says_so_on_the_trail(db: Database) -> None:
    a, b = seed(db, ["refund me", "app crashes"])
    saved = review.correct_many(db, [(a, "billing", version(db, a)), (b, "technical", version(db, b))],
                                actor=ALICE, taxonomy=TAX)
    assert saved.saved == [a, b] and [x.ticket_id for x in saved.before] == [a, b]
    undone = review.undo(db, saved.before, actor=ALICE)
    assert undone.saved == [a, b] and not undone.conflicts
    with db.read() as s:
        for tid in (a, b):
            t = s.get_one(Ticket, tid)
            assert (t.category, t.label_source, t.corrected, t.corrected_by) == (None, None, False, None)
        trail = [(c.ticket_id, c.new_label, c.note, c.source) for c in s.scalars(select(Correction)
                                                                               .order_by(Correction.id))]
        assert trail[-2:] == [(a, "", "undo", "undo"), (b, "", "undo", "undo")]
        assert s.scalars(select(AuditEvent.event)).all()[-1] == "labels.undone"


def test_undo_restores_an_earlier_operator_label_and_refuses_over_someone_elses_change(db: Database) -> None:
    a, b = seed(db, ["refund me", "app crashes"])
    review.correct(db, a, "account", actor=ALICE, expected_version=version(db, a), taxonomy=TAX)
    saved = review.correct_many(db, [(a, "billing", version(db, a)), (b, "technical", version(db, b))],
                                actor=ALICE, taxonomy=TAX)
    review.correct(db, b, "account", actor=op("bob"), expected_version=version(db, b), taxonomy=TAX)
    undone = review.undo(db, saved.before, actor=ALICE)
    assert undone.saved == [a] and len(undone.conflicts) == 1 and "bob" in undone.conflicts[0]
    with db.read() as s:
        assert (s.get_one(Ticket, a).category, s.get_one(Ticket, a).label_source) == ("account", "operator")
        assert (s.get_one(Ticket, b).category, s.get_one(Ticket, b).corrected_by) == ("account", "bob")


def test_all_matching_a_filter_are_labelled_and_the_filter_is_audited(db: Database) -> None:
    ids = seed(db, ["refund me twice", "refund me now", "app crashes"])
    f = ReviewFilter(search="refund")
    assert [t for t, _, _ in review.matching(db, f, actor=ALICE)] == ids[:2]
    result = review.correct_matching(db, f, "billing", actor=ALICE, taxonomy=TAX)
    assert result.saved == ids[:2]
    with db.read() as s:
        assert [s.get_one(Ticket, t).category for t in ids] == ["billing", "billing", None]
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event is not None
        assert event.event == "labels.by_filter" and "refund" in str(event.detail)


def test_next_after_skips_saved_rows_and_wraps() -> None:
    now = datetime.now(UTC)
    rows = [ReviewRow(i, None, "x", None, None, "needs_review", None, None, None, False, 1, now) for i in (1, 2, 3)]
    assert review.next_after(rows, 1, {1}) == 2
    assert review.next_after(rows, 3, {3}) == 1
    assert review.next_after(rows, 2, {1, 2, 3}) is None
