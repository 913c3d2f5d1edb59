"""call ledger: reservations / attempts of paid calls, and calls whose cost is unknown

Revision ID: 0008
Revises: 0011 (chained after main's head so that databases already at 0011 get it; the lead may re-chain it)
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'call_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('tier', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=64), nullable=False),
        sa.Column('worker', sa.String(length=120), nullable=True),
        sa.Column('estimated_pico', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_call_attempts_state_started', ['state', 'started_at'], unique=False)
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cost_known', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('cost_note', sa.Text(), nullable=True))
    # the Spend page counts calls of unknown cost by date: a partial index holds only those (few) rows
    op.create_index('ix_model_calls_unknown_cost', 'model_calls', ['created_at'], unique=False,
                    sqlite_where=sa.text('cost_known = 0'), postgresql_where=sa.text('cost_known = false'))


def downgrade() -> None:
    op.drop_index('ix_model_calls_unknown_cost', table_name='model_calls')
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.drop_column('cost_note')
        batch_op.drop_column('cost_known')
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_call_attempts_state_started')
    op.drop_table('call_attempts')
