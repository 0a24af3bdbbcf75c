"""Readings: ix_reading_meter_id dropped (issue 13). ix_reading_meter_ts
(meter_id, ts) serves every query by meter (its leading column) and the
foreign key's checks; the single-column index was one more b-tree written
for every reading stored.

Revision ID: 0013c
Revises: 0013b
Create Date: 2026-12-02
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op

revision = "0013c"
down_revision = "0013b"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_reading_meter_id", table_name="reading")


def downgrade():
    op.create_index("ix_reading_meter_id", "reading", ["meter_id"])
