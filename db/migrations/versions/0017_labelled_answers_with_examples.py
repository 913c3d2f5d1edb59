"""labelled_answers: per ticket and tier, the latest answer sent with few-shot examples and the latest without,
each with its call's model, outcome and example count

The Quality page read every call of the newest labelled tickets once any call carried examples (its with/without
comparison needs both answers), and looked each answer's model and outcome up in model_calls; now both come from
this table. The table is rebuilt from the calls of the operator-labelled tickets (the application's query,
db.rollups.latest_answers, as 0007 used the application's rebuild: a later migration that changes this table must
freeze a copy of it here).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 15:30:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import insert
from sqlalchemy.orm import Session


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

OLD = ['ticket_id', 'tier', 'call_id', 'truth', 'label', 'confidence', 'cost_pico']


def _common() -> list[sa.schema.SchemaItem]:
    return [sa.Column('ticket_id', sa.Integer(), nullable=False),
            sa.Column('tier', sa.Integer(), nullable=False),
            sa.Column('call_id', sa.Integer(), nullable=False),
            sa.Column('truth', sa.String(length=64), nullable=False),
            sa.Column('label', sa.String(length=64), nullable=True),
            sa.Column('confidence', sa.Float(), nullable=True),
            sa.Column('cost_pico', sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE')]


def upgrade() -> None:
    op.drop_table('labelled_answers')
    op.create_table('labelled_answers', *_common(),
                    sa.Column('with_examples', sa.Integer(), nullable=False),
                    sa.Column('model', sa.String(length=64), nullable=False),
                    sa.Column('outcome', sa.String(length=16), nullable=False),
                    sa.Column('examples', sa.Integer(), nullable=True),
                    sa.PrimaryKeyConstraint('ticket_id', 'tier', 'with_examples'),
                    sqlite_with_rowid=False)
    from db import rollups
    from db.models import LabelledAnswer

    s = Session(bind=op.get_bind())
    s.execute(insert(LabelledAnswer).from_select(rollups.ANSWER_COLUMNS, rollups.latest_answers()))
    rollups.bump_version(s, rollups.LABELS)  # cached Quality pages recompute
    s.flush()


def downgrade() -> None:
    cols = ', '.join(OLD)
    op.execute(f"CREATE TABLE labelled_answers_0016 AS SELECT {cols} FROM labelled_answers a WHERE a.call_id = "
               "(SELECT max(b.call_id) FROM labelled_answers b WHERE b.ticket_id = a.ticket_id AND b.tier = a.tier)")
    op.drop_table('labelled_answers')
    op.create_table('labelled_answers', *_common(), sa.PrimaryKeyConstraint('ticket_id', 'tier'),
                    sqlite_with_rowid=False)
    op.execute(f"INSERT INTO labelled_answers ({cols}) SELECT {cols} FROM labelled_answers_0016")
    op.drop_table('labelled_answers_0016')
