"""Alerts (issue 26): alert_events (one row per thing noticed, deduplicated by a UNIQUE key), alert_deliveries (the
outbox: one row per event and channel) and alert_attempts (every attempt to deliver).

Revision ID: 0024_alerts
Revises: 0023_paths
Create Date: 2026-12-06 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0024_alerts'
down_revision = '0023_paths'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alert_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('condition', sa.String(length=180), nullable=False),
        sa.Column('episode', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('title', sa.String(length=300), nullable=False),
        sa.Column('facts', sa.Text(), nullable=False),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('team', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    op.create_index('ix_alert_events_condition_episode', 'alert_events', ['condition', 'episode'])
    op.create_index('ix_alert_events_ticket_id', 'alert_events', ['ticket_id'])
    op.create_table(
        'alert_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_by', sa.String(length=120), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['alert_events.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'channel', name='uq_alert_deliveries_event_channel'),
    )
    op.create_index('ix_alert_deliveries_state_next', 'alert_deliveries', ['state', 'next_at'])
    op.create_table(
        'alert_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=120), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('latency_ms', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['delivery_id'], ['alert_deliveries.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alert_attempts_delivery_id', 'alert_attempts', ['delivery_id'])


def downgrade() -> None:
    op.drop_index('ix_alert_attempts_delivery_id', table_name='alert_attempts')
    op.drop_table('alert_attempts')
    op.drop_index('ix_alert_deliveries_state_next', table_name='alert_deliveries')
    op.drop_table('alert_deliveries')
    op.drop_index('ix_alert_events_ticket_id', table_name='alert_events')
    op.drop_index('ix_alert_events_condition_episode', table_name='alert_events')
    op.drop_table('alert_events')
