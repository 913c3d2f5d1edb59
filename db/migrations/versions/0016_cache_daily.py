"""cache_daily: the few-shot and prompt-cache sums per day, so the Spend page's few-shot figures read the days
shown instead of the calls

One row per UTC day, model, tier, with examples or not, service tier, inference geo and prompt size in thousands
of tokens, for the calls that carried labelled examples or used the prompt cache (db.rollups keeps it in step
with each call from now on). Built here from the calls already stored, through the partial index of such calls
(ix_model_calls_fewshot, 0013), so the build costs what those calls cost, not the whole table.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 15:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import insert
from sqlalchemy.orm import Session


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

SUMS = ('examples', 'input_tokens', 'output_tokens', 'cache_write_5m_tokens', 'cache_write_1h_tokens',
        'cache_read_tokens', 'cost_pico')


def upgrade() -> None:
    op.create_table('cache_daily',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('with_examples', sa.Integer(), nullable=False),
    sa.Column('service_tier', sa.String(length=16), nullable=False),
    sa.Column('inference_geo', sa.String(length=16), nullable=False),
    sa.Column('prompt_kilo', sa.Integer(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in SUMS],
    sa.PrimaryKeyConstraint('day', 'model', 'tier', 'with_examples', 'service_tier', 'inference_geo', 'prompt_kilo')
    )
    # the application's own query (db.fewshot), as 0007 uses the application's rebuild: a later migration that
    # changes cache_daily or these columns of model_calls must freeze a copy of it here
    from db import fewshot, rollups
    from db.models import CacheDaily

    s = Session(bind=op.get_bind())
    rows = fewshot.cache_by_day_from_calls(s)
    for i in range(0, len(rows), 10_000):
        s.execute(insert(CacheDaily), rows[i:i + 10_000])
    rollups.bump_version(s, rollups.REBUILDS)  # cached Spend pages recompute
    s.flush()


def downgrade() -> None:
    op.drop_table('cache_daily')
