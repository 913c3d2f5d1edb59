"""label imports: tickets.text_hash (match a labelled row by its text), corrections.source and corrections.file

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-01 09:00:00

Follows 0010 (audit events).
"""
import hashlib
import re

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _text_hash(text: str) -> str:
    # frozen copy of db.models.text_hash as of this revision
    return hashlib.sha256(re.sub(r"\s+", " ", (text or "").strip()).encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_text_hash'), ['text_hash'], unique=False)
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='review'))
        batch_op.add_column(sa.Column('file', sa.String(length=255), nullable=True))

    conn = op.get_bind()
    tickets = sa.table('tickets', sa.column('id', sa.Integer), sa.column('text', sa.Text),
                       sa.column('text_hash', sa.String))
    last = 0
    while True:  # existing tickets, 1,000 at a time
        rows = conn.execute(sa.select(tickets.c.id, tickets.c.text).where(tickets.c.id > last)
                            .order_by(tickets.c.id).limit(1000)).all()
        if not rows:
            break
        conn.execute(tickets.update().where(tickets.c.id == sa.bindparam('tid'))
                     .values(text_hash=sa.bindparam('h')), [{'tid': r.id, 'h': _text_hash(r.text)} for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_column('file')
        batch_op.drop_column('source')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_text_hash'))
        batch_op.drop_column('text_hash')
