"""Interval rollups (issue 11): per meter, hour/day/month, tariff band:
energy, cost, reading count; and the mark that says from when the raw
readings are all rolled up (readings already stored are not: they wait for
`wattkeeper db rollups` and the retention guard keeps them till then).

Revision ID: 0011
Revises: 0013
Create Date: 2026-12-01
"""
import time

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0013"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade():
    op.create_table(
        "rollup",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("period", S(length=1), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("band", S(length=12), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("cost_mu", sa.BigInteger(), nullable=False),
        sa.Column("readings", sa.BigInteger(), nullable=False),
        sa.Column("first_ts", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.PrimaryKeyConstraint("meter_id", "period", "start", "band"))
    op.create_index("ix_rollup_period_start", "rollup", ["period", "start", "meter_id"])
    op.create_table(
        "rollup_mark",
        sa.Column("name", S(length=20), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"))
    bind = op.get_bind()
    has = bind.execute(sa.text("SELECT 1 FROM reading LIMIT 1")).first() is not None
    bind.execute(sa.text("INSERT INTO rollup_mark (name, ts) VALUES ('since', :t)"),
                 {"t": int(time.time()) if has else 0})


def downgrade():
    op.drop_table("rollup_mark")
    op.drop_index("ix_rollup_period_start", table_name="rollup")
    op.drop_table("rollup")
