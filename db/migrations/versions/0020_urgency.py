"""Urgency, language and team: tickets.priority, priority_confidence, priority_source, language, team;
model_calls.priority, priority_confidence; priority_corrections (operators' priorities, append-only).

Revision ID: 0020_urgency
Revises: 0019_batches
Create Date: 2026-12-05 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0020_urgency'
down_revision = '0019_batches'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('priority_confidence', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('priority_source', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('team', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_tickets_priority_confidence', ['priority', 'confidence', 'id'], unique=False)
        batch_op.create_index('ix_tickets_team', ['team'], unique=False)
        batch_op.create_index('ix_tickets_language', ['language'], unique=False)
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('priority_confidence', sa.Float(), nullable=True))
    op.create_table(
        'priority_corrections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('previous_priority', sa.String(length=32), nullable=True),
        sa.Column('new_priority', sa.String(length=32), nullable=False),
        sa.Column('operator', sa.String(length=120), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_priority_corrections_ticket_id', 'priority_corrections', ['ticket_id'], unique=False)


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), never a batch copy: on SQLite a batch drops and recreates
    # the table, and dropping model_calls would cascade into labelled_answers
    op.drop_index('ix_priority_corrections_ticket_id', table_name='priority_corrections')
    op.drop_table('priority_corrections')
    op.drop_column('model_calls', 'priority_confidence')
    op.drop_column('model_calls', 'priority')
    op.drop_index('ix_tickets_language', table_name='tickets')
    op.drop_index('ix_tickets_team', table_name='tickets')
    op.drop_index('ix_tickets_priority_confidence', table_name='tickets')
    for column in ('team', 'language', 'priority_source', 'priority_confidence', 'priority'):
        op.drop_column('tickets', column)
