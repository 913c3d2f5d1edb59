"""page rollups: per-day routing and latency, answered and demo totals, labelled answers, data versions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 09:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.orm import Session


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

NEW_SPEND_COLUMNS = ('answered_input_tokens', 'answered_output_tokens', 'demo_calls', 'demo_cost_pico')


def upgrade() -> None:
    with op.batch_alter_table('spend_daily', schema=None) as batch_op:
        for name in NEW_SPEND_COLUMNS:
            kind = sa.Integer() if name == 'demo_calls' else sa.BigInteger()
            batch_op.add_column(sa.Column(name, kind, nullable=False, server_default='0'))
    op.create_table('routing_daily',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('tickets', sa.Integer(), nullable=False),
    sa.Column('tier1_tickets', sa.Integer(), nullable=False),
    sa.Column('tier2_tickets', sa.Integer(), nullable=False),
    sa.Column('direct_tier2_pico', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('latency_daily',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('bucket_ms', sa.Integer(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'model', 'bucket_ms')
    )
    op.create_table('labelled_answers',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('truth', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('cost_pico', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ticket_id', 'tier'),
    sqlite_with_rowid=False
    )
    op.create_table('data_versions',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    # build every rollup from the calls already recorded. This uses the application's rebuild, which writes
    # the rollup tables as the models define them: a later migration that changes these tables must run
    # before it or freeze a copy of it here.
    from db import reports

    # the tables as they are here: spend_daily.requests came with 0015; cache_daily with 0016; labelled_answers
    # is rebuilt by 0017, which gave it its present shape; tickets have no purpose before 0025 (0026 rebuilds
    # routing_daily and latency_daily for production tickets only)
    reports.rebuild_rollups(Session(bind=op.get_bind()), only=('spend_daily', 'routing_daily', 'latency_daily'),
                            requests=False, apart=False)


def downgrade() -> None:
    op.drop_table('data_versions')
    op.drop_table('labelled_answers')
    op.drop_table('latency_daily')
    op.drop_table('routing_daily')
    with op.batch_alter_table('spend_daily', schema=None) as batch_op:
        for name in reversed(NEW_SPEND_COLUMNS):
            batch_op.drop_column(name)
