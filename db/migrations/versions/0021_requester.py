"""Personal data (issue 21): tickets.requester_hash and tickets.masked_count

- `requester_hash`: who wrote the ticket, as an HMAC-SHA256 of the requester's e-mail (lower-cased, stripped)
  keyed with the installation's secret salt (`privacy.salt` in settings, the one the audit trail's criteria are
  hashed with); `triage erase --requester EMAIL` hashes the address it is given and finds the tickets by it.
  Indexed. NULL: no requester column was given at import.
- `masked_count`: how many values the masking policy in force at import replaced in the text before any model
  saw it (the review queue's "has masked values" filter). NULL: imported before this revision (not counted).

Revision ID: 0021_requester
Revises: 0020_urgency
Create Date: 2026-12-05 17:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0021_requester'
down_revision = '0020_urgency'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE on both databases: a batch copy of `tickets` on SQLite would drop the old table, and its
    # ON DELETE CASCADE children (model_calls, vectors, corrections) with it
    op.add_column('tickets', sa.Column('requester_hash', sa.String(length=64), nullable=True))
    op.add_column('tickets', sa.Column('masked_count', sa.Integer(), nullable=True))
    op.create_index('ix_tickets_requester_hash', 'tickets', ['requester_hash'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_requester_hash', table_name='tickets')
    op.drop_column('tickets', 'masked_count')  # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), no table copy
    op.drop_column('tickets', 'requester_hash')
