"""The blind audit sample: audit_draws, one row per ticket settled without review, drawn or not, with the chance
it had of being drawn and, once given, the operator's blind answer (db.audit_sample).

Revision ID: 0022_audit
Revises: 0021_requester
Create Date: 2026-12-05 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0022_audit'
down_revision = '0021_requester'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_draws',
        sa.Column('ticket_id', sa.Integer(), sa.ForeignKey('tickets.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('settled_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('tier', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=64), nullable=True),
        sa.Column('probability', sa.Float(), nullable=False),
        sa.Column('drawn', sa.Boolean(), nullable=False),
        sa.Column('answer', sa.String(length=64), nullable=True),
        sa.Column('answered_by', sa.String(length=120), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_audit_draws_stratum', 'audit_draws', ['tier', 'model', 'drawn'])
    op.create_index('ix_audit_draws_drawn', 'audit_draws', ['drawn', 'answered_at', 'ticket_id'])


def downgrade() -> None:
    op.drop_index('ix_audit_draws_drawn', table_name='audit_draws')
    op.drop_index('ix_audit_draws_stratum', table_name='audit_draws')
    op.drop_table('audit_draws')
