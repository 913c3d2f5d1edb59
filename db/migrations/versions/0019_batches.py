"""Message Batch runs: runs.batch_key and runs.batch_owner; held tickets stay held while their batch is open

- `batch_key`: a random nonce per submission, carried in every custom id of the batch, so that a submission
  whose answer was lost adopts only a batch whose results name this key (never another deployment's batch on a
  shared API key that merely has the same number of requests).
- `batch_owner`: the process that won the compare-and-set from queued (or an abandoned submission) to
  submitting, or from in progress to collecting; only it sends or records.
- Tickets held for an open batch were held for a fixed 25 hours; they are now held until the batch is
  collected, gone or failed (`db.batches.HELD_OPEN`), so that no worker sends them live however late the
  collect comes. Holds that have not run out yet are extended.

Revision ID: 0019_batches
Revises: 0018
Create Date: 2026-12-05 15:00:00
"""
from datetime import UTC, datetime, timedelta

from alembic import op
import sqlalchemy as sa


revision = '0019_batches'
down_revision = '0018'
branch_labels = None
depends_on = None

HELD_OPEN = datetime(9999, 1, 1, tzinfo=UTC)  # db.batches.HELD_OPEN


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_key', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('batch_owner', sa.String(length=120), nullable=True))
    tickets = sa.table('tickets', sa.column('status', sa.String()), sa.column('claimed_by', sa.String()),
                       sa.column('claimed_at', sa.DateTime(timezone=True)))
    op.execute(tickets.update().where(tickets.c.status == 'pending', tickets.c.claimed_by.like('batch:%'),
                                      tickets.c.claimed_at > datetime.now(UTC)).values(claimed_at=HELD_OPEN))


def downgrade() -> None:
    tickets = sa.table('tickets', sa.column('claimed_by', sa.String()),
                       sa.column('claimed_at', sa.DateTime(timezone=True)))
    op.execute(tickets.update().where(tickets.c.claimed_by.like('batch:%'), tickets.c.claimed_at == HELD_OPEN)
               .values(claimed_at=datetime.now(UTC) + timedelta(hours=25)))  # the old fixed hold
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('batch_owner')
        batch_op.drop_column('batch_key')
