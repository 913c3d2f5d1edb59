"""several tickets per request: model_calls.group_size and group_position, spend_daily.requests, runs.per_call

A request about N tickets is recorded as N calls (one per ticket, each with its share of usage and cost) that
say how many shared it and which ticket id (1..N) each was in it; spend_daily counts API requests apart from
calls; a run may say how many tickets each of its requests carries (it travels with the run, like its tier and
threshold). Every call before this one was a request of its own.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_size', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('group_position', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('spend_daily', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requests', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE spend_daily SET requests = calls")
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('per_call', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('per_call')
    with op.batch_alter_table('spend_daily', schema=None) as batch_op:
        batch_op.drop_column('requests')
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.drop_column('group_position')
        batch_op.drop_column('group_size')
