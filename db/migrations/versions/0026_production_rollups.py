"""routing_daily and latency_daily count production tickets only (db.rollups): a pilot's sample and `triage eval`'s
gold tickets are not the team's traffic, so they no longer move the Spend page's tickets a day, escalation rate and
latency, nor the tickets a day behind the review budget. The rows written before counted every call; both tables are
rebuilt from the calls with the present definition (no schema change).

Revision ID: 0026_production_rollups
Revises: 0025_pilot
Create Date: 2026-12-10 10:00:00
"""
from alembic import op
from sqlalchemy.orm import Session


revision = '0026_production_rollups'
down_revision = '0025_pilot'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the application's rebuild, as 0007 used it: a later migration that changes these tables must run before it or
    # freeze a copy of it here
    from db import reports

    reports.rebuild_rollups(Session(bind=op.get_bind()), only=('routing_daily', 'latency_daily'))


def downgrade() -> None:
    from db import reports

    reports.rebuild_rollups(Session(bind=op.get_bind()), only=('routing_daily', 'latency_daily'), apart=False)
