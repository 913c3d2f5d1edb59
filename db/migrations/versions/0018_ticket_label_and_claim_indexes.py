"""two ticket indexes: (label_source, category) and (status, claimed_at)

- The Settings page counts the operator-labelled tickets few-shot can draw on (label_source = 'operator' and a
  category of the taxonomy): without the index that count read every ticket, on every visit (50 ms at 300,000
  tickets, growing with them).
- An idle worker asks whether any pending ticket is free to take (unclaimed, or its claim's lease ran out):
  through (status, id) that walked every pending ticket another worker held (a large Message Batch holds all of
  its tickets until collected); through (status, claimed_at) it is two index probes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 16:00:00
"""
from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tickets_label_source_category', 'tickets', ['label_source', 'category'], unique=False)
    op.create_index('ix_tickets_status_claimed', 'tickets', ['status', 'claimed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_status_claimed', table_name='tickets')
    op.drop_index('ix_tickets_label_source_category', table_name='tickets')
