"""calibrations (a per-model map from stated confidence to the chance of being right) and, on model_calls, the
calibration each call was routed with and its calibrated confidence

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:00:00

Plain nullable columns without a foreign key: on SQLite (and PostgreSQL) adding them never rewrites model_calls.
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calibrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=64), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('a', sa.Float(), nullable=False),
        sa.Column('b', sa.Float(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('n_right', sa.Integer(), nullable=False),
        sa.Column('ece_before', sa.Float(), nullable=False),
        sa.Column('ece_after', sa.Float(), nullable=True),
        sa.Column('trigger', sa.String(length=40), nullable=False),
        sa.Column('fitted_by', sa.String(length=255), nullable=False),
        sa.Column('fitted_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_calibrations_model_id', 'calibrations', ['model', 'id'], unique=False)
    op.add_column('model_calls', sa.Column('calibration_id', sa.Integer(), nullable=True))
    op.add_column('model_calls', sa.Column('calibrated_confidence', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('model_calls', schema=None) as batch_op:
        batch_op.drop_column('calibrated_confidence')
        batch_op.drop_column('calibration_id')
    op.drop_index('ix_calibrations_model_id', table_name='calibrations')
    op.drop_table('calibrations')
