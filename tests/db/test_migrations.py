from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from db.engine import Database
from db.migrate import open_database, upgrade
from db.models import Base


def test_empty_database_migrates_to_head_and_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    db = open_database(url)  # idempotent: a second upgrade is a no-op
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        assert set(inspect(conn).get_table_names()) >= {"tickets", "model_calls", "corrections", "runs",
                                                         "settings", "alembic_version"}


def test_sqlite_is_tuned_for_several_operators(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 30000


def test_rollup_migration_backfills_existing_calls(tmp_path: Path) -> None:
    from sqlalchemy import text as sql

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    db = open_database(url, migrate=False)
    with db.engine.begin() as conn:
        conn.execute(sql("INSERT INTO tickets (id, text, source, content_hash, created_at, updated_at, status, "
                         "escalated, disagree, corrected, version, first_call_id) VALUES (1, 't', 's', 'h', "
                         "'2026-11-01 10:00:00', '2026-11-01 10:00:00', 'classified', 0, 0, 0, 1, 0)"))
        for cost in (5, 7):
            conn.execute(sql("INSERT INTO model_calls (ticket_id, tier, model, outcome, input_tokens, output_tokens, "
                             "cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_pico, latency_ms, "
                             f"attempts, created_at) VALUES (1, 1, 'm', 'ok', 10, 2, 0, 0, 3, {cost}, 1, 1, "
                             "'2026-11-01 10:00:00.5')"))
    upgrade(url)
    with db.engine.connect() as conn:
        row = conn.execute(sql("SELECT day, model, tier, calls, input_tokens, cache_tokens, cost_pico "
                               "FROM spend_daily")).one()
        # the calls themselves survive every migration (0004 rebuilds `tickets` on SQLite: with foreign keys
        # on, that used to cascade-delete them)
        assert conn.execute(sql("SELECT count(*) FROM model_calls")).scalar() == 2
        assert tuple(conn.execute(sql("SELECT day, tickets, tier1_tickets FROM routing_daily")).one()) == \
            ("2026-11-01", 1, 1)
        assert conn.execute(sql("PRAGMA foreign_keys")).scalar() == 1
    assert tuple(row) == ("2026-11-01", "m", 1, 2, 20, 6, 12)
    db.dispose()


def test_fewshot_rollups_are_built_for_an_existing_database_and_undone(any_db_url: str) -> None:
    """0016 builds cache_daily and 0017 rebuilds labelled_answers (latest answer with examples and without, per
    tier) from the calls already stored; 0017's downgrade keeps each tier's latest answer."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import select

    from db.migrate import alembic_config
    from db.models import ModelCall, Ticket

    url = any_db_url
    upgrade(url, "0015")
    db = open_database(url, migrate=False)
    when = datetime(2026, 11, 30, 12, tzinfo=UTC)
    with db.transaction() as s:  # written straight to the tables (core inserts of the columns 0015 has): the
        # rollups do not exist yet, nor the columns later migrations add
        from sqlalchemy import insert

        ticket_id = s.execute(insert(Ticket.__table__).values(  # type: ignore[arg-type]
            text="refund please", content_hash="h1", label_source="operator", category="billing")
            .returning(Ticket.__table__.c.id)).scalar_one()
        for examples, category, read in ((None, "billing", 0), (4, "account", 700), (None, "account", 0)):
            s.execute(insert(ModelCall.__table__).values(  # type: ignore[arg-type]
                ticket_id=ticket_id, tier=1, model="claude-haiku-5-5", outcome="ok", category=category,
                confidence=0.7, input_tokens=1500, output_tokens=20, cache_read_tokens=read, cost_pico=1000,
                examples=examples, created_at=when))
        ids = list(s.scalars(select(ModelCall.id).order_by(ModelCall.id)))
    upgrade(url)
    with db.engine.connect() as conn:
        cache = conn.execute(text("SELECT day, model, tier, with_examples, prompt_kilo, calls, examples, "
                                  "cache_read_tokens FROM cache_daily")).all()
        answers = conn.execute(text("SELECT tier, with_examples, call_id, label, model, outcome, examples "
                                    "FROM labelled_answers ORDER BY call_id")).all()
    assert [tuple(r) for r in cache] == [("2026-11-30", "claude-haiku-5-5", 1, 1, 2, 1, 4, 700)]  # 2,200 tokens
    assert [tuple(r) for r in answers] == [(1, 1, ids[1], "account", "claude-haiku-5-5", "ok", 4),
                                           (1, 0, ids[2], "account", "claude-haiku-5-5", "ok", None)]
    command.downgrade(alembic_config(url), "0015")
    with db.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(text("SELECT tier, call_id FROM labelled_answers"))] == [(1, ids[2])]
        assert "cache_daily" not in inspect(conn).get_table_names()
    db.dispose()
