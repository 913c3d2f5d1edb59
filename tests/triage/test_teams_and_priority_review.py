"""Teams by rule (first match wins, a default last, re-applied and audited when the table changes), the review
queue's priority, language and team filters with urgent first, and operators' priorities (version-checked,
audited)."""

from pathlib import Path

import pytest
from sqlalchemy import select, update

from db.engine import Database
from db.models import AuditEvent, PriorityCorrection, Ticket
from tests.support.actors import LEAD, OPERATOR, VIEWER
from triage import review, taxonomy, teams
from triage.domain import ReviewFilter, TeamRule, team_for
from triage.errors import AccessDenied, Conflict, InputError
from triage.work import runs

TAX = taxonomy.default()
TABLE = [{"category": "billing", "priority": "urgent", "language": "", "team": "Billing escalations"},
         {"category": "billing", "priority": "*", "language": "", "team": "Billing"},
         {"category": "", "priority": "", "language": "fr", "team": "Support FR"},
         {"category": "", "priority": "", "language": "", "team": "Support"}]


def seed(db: Database) -> list[int]:
    """Five tickets with category, priority and language set as if classified."""
    imp = runs.start_run(db, [(None, f"ticket {i}") for i in range(5)], source="test", actor=LEAD)
    facts = [("billing", "urgent", "en", 0.9), ("billing", "low", "en", 0.4), ("account", "urgent", "fr", 0.8),
             ("account", None, "fr", 0.3), ("technical", "high", "en", 0.5)]
    with db.transaction() as s:
        for tid, (cat, pri, lang, conf) in zip(imp.ticket_ids, facts, strict=True):
            s.execute(update(Ticket).where(Ticket.id == tid).values(category=cat, priority=pri, language=lang,
                                                                     confidence=conf, status="needs_review"))
    return imp.ticket_ids


def test_first_match_wins_and_the_default_comes_last() -> None:
    rules = teams.parse_rows(TABLE, TAX)
    assert team_for(rules, "billing", "urgent", "fr") == "Billing escalations"
    assert team_for(rules, "billing", "high", "fr") == "Billing"
    assert team_for(rules, "account", None, "fr") == "Support FR"
    assert team_for(rules, "account", "low", None) == "Support"


@pytest.mark.parametrize("rows", [TABLE[:-1], [TABLE[-1], *TABLE], [{"category": "nope", "team": "X"}, TABLE[-1]],
                                  [{"priority": "critical", "team": "X"}, TABLE[-1]], []])
def test_a_table_that_could_leave_a_ticket_without_a_team_or_names_unknown_values_is_refused(
        rows: list[dict[str, str]]) -> None:
    with pytest.raises(InputError):
        teams.parse_rows(rows, TAX)


def test_a_file_loads_and_saving_reapplies_to_every_ticket_audited(db: Database, tmp_path: Path) -> None:
    ids = seed(db)
    path = tmp_path / "teams.csv"
    path.write_text("category,priority,language,team\n" + "\n".join(
        f"{r['category']},{r['priority']},{r['language']},{r['team']}" for r in TABLE) + "\n")
    current = teams.in_force(db, TAX, env={"TRIAGE_TEAMS": str(path)})
    assert current.source == "environment" and len(current.rules) == 4
    with pytest.raises(AccessDenied):
        teams.save(db, current.rules, actor=OPERATOR)
    assert teams.load_environment(db, TAX, actor=LEAD, env={"TRIAGE_TEAMS": str(path)})
    with db.read() as s:
        got = dict(s.execute(select(Ticket.id, Ticket.team).where(Ticket.id.in_(ids))).all())
        assert [got[i] for i in ids] == ["Billing escalations", "Billing", "Support FR", "Support FR", "Support"]
        assert s.scalar(select(AuditEvent.event).order_by(AuditEvent.id.desc())) == "settings.teams"
    moved = teams.save(db, (TeamRule("Everyone"),), actor=LEAD)
    assert moved == 5
    assert not teams.load_environment(db, TAX, actor=LEAD, env={"TRIAGE_TEAMS": str(path)})  # a lead's table stays


def test_the_queue_filters_by_priority_language_and_team_and_shows_urgent_first(db: Database) -> None:
    ids = seed(db)
    teams.save(db, teams.parse_rows(TABLE, TAX), actor=LEAD)
    every = review.page(db, review.queue_filter(TAX), actor=LEAD)
    assert [r.id for r in every.rows] == [ids[2], ids[0], ids[4], ids[1], ids[3]]  # urgent (by confidence) ... none
    assert [r.priority for r in every.rows] == ["urgent", "urgent", "high", "low", None]
    for size in (1, 2, 3):  # paging across the levels loses and repeats nothing
        paged = [r.id for n in range(0, 5) for r in review.page(db, review.queue_filter(TAX), n, size,
                                                                  actor=LEAD).rows]
        assert paged == [r.id for r in every.rows]
    french = review.page(db, ReviewFilter(languages=("fr",)), actor=LEAD)
    assert {r.id for r in french.rows} == {ids[2], ids[3]}
    unknown = review.page(db, ReviewFilter(priorities=("unknown", "low")), actor=LEAD)
    assert {r.id for r in unknown.rows} == {ids[1], ids[3]}
    billing = review.page(db, ReviewFilter(teams=("Billing", "Support")), actor=LEAD)
    assert {r.id for r in billing.rows} == {ids[1], ids[4]}
    assert billing.total == 2


def test_an_operator_sets_a_priority_version_checked_audited_and_the_team_follows(db: Database) -> None:
    ids = seed(db)
    teams.save(db, teams.parse_rows(TABLE, TAX), actor=LEAD)
    tid = ids[1]  # billing, low -> Billing
    detail = review.detail(db, tid, actor=OPERATOR)
    assert detail is not None
    with pytest.raises(AccessDenied):
        review.correct_priority(db, tid, "urgent", actor=VIEWER, expected_version=detail.ticket.version,
                                taxonomy=TAX)
    with pytest.raises(InputError):
        review.correct_priority(db, tid, "critical", actor=OPERATOR, expected_version=detail.ticket.version,
                                taxonomy=TAX)
    version = review.correct_priority(db, tid, "urgent", actor=OPERATOR, expected_version=detail.ticket.version,
                                      taxonomy=TAX)
    with pytest.raises(Conflict):  # someone saved meanwhile
        review.correct_priority(db, tid, "low", actor=OPERATOR, expected_version=detail.ticket.version, taxonomy=TAX)
    after = review.detail(db, tid, actor=OPERATOR)
    assert after is not None and after.ticket.version == version
    assert (after.ticket.priority, after.ticket.priority_source, after.ticket.team) == ("urgent", "operator",
                                                                                        "Billing escalations")
    assert after.ticket.category == "billing" and not after.ticket.corrected  # the category is not confirmed
    assert after.history[-1]["to"] == "priority urgent"
    with db.read() as s:
        assert s.scalar(select(PriorityCorrection.operator)) == OPERATOR.identity
        assert s.scalar(select(AuditEvent.event).order_by(AuditEvent.id.desc())) == "review.priority"


def test_the_export_carries_priority_language_and_team(db: Database) -> None:
    from triage.export import export_tickets

    seed(db)
    data, _ = export_tickets(db, "csv", actor=LEAD)
    header = data.decode().splitlines()[0]
    assert {"priority", "language", "team"} <= set(header.split(","))


def test_a_teams_file_in_the_environment_gives_every_classified_ticket_its_team(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRIAGE_TEAMS takes effect at the first classification (stored, audited as the environment's), with no
    lead saving it in Settings; a table a lead saved later is never replaced by the file."""
    from triage.settings import Settings
    from triage.work import classify

    table = tmp_path / "teams.csv"
    table.write_text("category,priority,language,team\n,,fr,Support FR\n,,,Support\n")
    monkeypatch.setenv("TRIAGE_TEAMS", str(table))
    started = classify.start(db, Settings(), TAX, [(None, "Bonjour, je ne peux pas me connecter à mon compte"),
                                                   (None, "I cannot log in to my account since yesterday")],
                             actor=LEAD, source="test", route="local")
    classify.finish(db, Settings(), TAX, started, actor=LEAD)
    with db.read() as s:
        got = dict(s.execute(select(Ticket.language, Ticket.team)).all())
        events = list(s.scalars(select(AuditEvent.actor).where(AuditEvent.event == "settings.teams")))
    assert got == {"fr": "Support FR", "en": "Support"}
    assert events == ["environment:TRIAGE_TEAMS"]
    teams.save(db, teams.parse_rows([{"team": "Everyone"}], TAX), actor=LEAD)
    classify.start(db, Settings(), TAX, [(None, "another one")], actor=LEAD, source="test", route="local")
    assert teams.in_force(db, TAX).rules == (TeamRule("Everyone"),)
