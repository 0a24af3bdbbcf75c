"""Per-meter RS485 error counters in the database (issue 13): what every
head-end worker and a restart see, written by each status message.

Revision ID: 0013b
Revises: 0013a
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0013b"
down_revision = "0013a"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "meter_bus_errors",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("timeouts", sa.BigInteger(), nullable=False),
        sa.Column("crc", sa.BigInteger(), nullable=False),
        sa.Column("wrong_address", sa.BigInteger(), nullable=False),
        sa.Column("exceptions", sa.BigInteger(), nullable=False),
        sa.Column("offline", sa.BigInteger(), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=True),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.PrimaryKeyConstraint("meter_id"))


def downgrade():
    op.drop_table("meter_bus_errors")
