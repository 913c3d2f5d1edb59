"""A pilot on the team's own history: what a run and its tickets are for (runs.purpose, tickets.purpose:
production | eval | pilot; `triage eval`'s earlier runs and gold tickets, by their source eval:FILE, are eval), and
the pilots queued by leads (pilots).

Revision ID: 0025_pilot
Revises: 0024_alerts
Create Date: 2026-12-08 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0025_pilot'
down_revision = '0024_alerts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('runs', 'tickets'):
        op.add_column(table, sa.Column('purpose', sa.String(length=12), nullable=False,
                                       server_default='production'))
        op.execute(sa.text(f"UPDATE {table} SET purpose = 'eval' WHERE source LIKE 'eval:%'"))
    op.create_table(
        'pilots',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=255), nullable=False),
        sa.Column('started_by', sa.String(length=120), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('sample', sa.Integer(), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('cap_pico', sa.BigInteger(), nullable=False),
        sa.Column('volume', sa.Integer(), nullable=True),
        sa.Column('spec', sa.Text(), nullable=False),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('worker', sa.String(length=120), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_pilots_status', 'pilots', ['status', 'id'])


def downgrade() -> None:
    op.drop_index('ix_pilots_status', table_name='pilots')
    op.drop_table('pilots')
    for table in ('tickets', 'runs'):
        op.drop_column(table, 'purpose')  # SQLite 3.35+ drops a column in place (no table copy, no cascade)
