"""The routing story's paths per day: path_daily, and tickets.path (the path each ticket is counted under),
filled from the tickets (db.paths.rebuild).

Revision ID: 0023_paths
Revises: 0022_audit
Create Date: 2026-12-05 19:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.orm import Session


revision = '0023_paths'
down_revision = '0022_audit'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tickets', sa.Column('path', sa.String(length=80), nullable=True))
    op.create_table(
        'path_daily',
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('decider', sa.String(length=10), nullable=False),
        sa.Column('via_haiku', sa.Integer(), nullable=False),
        sa.Column('result', sa.String(length=10), nullable=False),
        sa.Column('verdict', sa.String(length=10), nullable=False),
        sa.Column('label_from', sa.String(length=8), nullable=False),
        sa.Column('tickets', sa.Integer(), nullable=False),
        sa.Column('demo_tickets', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'decider', 'via_haiku', 'result', 'verdict', 'label_from'),
    )
    from db import paths  # the definition of a path lives there
    paths.rebuild(Session(bind=op.get_bind()), apart=False)  # no pilots before 0025 (nor its purpose column)


def downgrade() -> None:
    op.drop_table('path_daily')
    op.drop_column('tickets', 'path')
