"""few-shot examples per call: model_calls.examples, and a partial index for the Spend page's few-shot and cache
figures

`examples` is how many labelled examples a tier-1 request carried (the fixed ones in the cached prefix plus those
retrieved for the ticket); NULL for calls sent without any, which is every call before this revision.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 12:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

WHERE = sa.text("(examples IS NOT NULL OR cache_read_tokens > 0 OR cache_write_5m_tokens > 0 "
                "OR cache_write_1h_tokens > 0)")  # the same text as db.models.FEWSHOT_OR_CACHED


def upgrade() -> None:
    op.add_column('model_calls', sa.Column('examples', sa.Integer(), nullable=True))  # no table rewrite
    op.create_index('ix_model_calls_fewshot', 'model_calls', ['created_at'], unique=False,
                    sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade() -> None:
    op.drop_index('ix_model_calls_fewshot', table_name='model_calls')
    with op.batch_alter_table('model_calls') as batch:
        batch.drop_column('examples')
