"""batch state on runs, request ids indexed

A run's Message Batch is remembered from before it is sent (state "submitting", with the time), so that a crash
between sending it and storing its id never sends the tickets twice; results are recorded once, by request id.

Revision ID: 0009
Revises: 0006 (re-chained by the lead on merge)
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('batch_since', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE runs SET batch_state = 'in_progress' WHERE batch_id IS NOT NULL")
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.create_index('ix_model_calls_request_id', ['request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_model_calls_request_id')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('batch_since')
        batch_op.drop_column('batch_state')
