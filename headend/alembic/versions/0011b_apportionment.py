"""Apportionment (公摊) and theft detection: pools of common-area or loss
energy with their split rule, the monthly runs that post them, each
account's share (the published breakdown, unique per account, pool and
month), and when each property's meters were last checked for theft.

Revision ID: 0011b
Revises: 0011
Create Date: 2026-12-10
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011b"
down_revision = "0011"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade():
    op.create_table(
        "apportion_pool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("name", S(length=100), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("rule", S(length=16), nullable=False),
        sa.Column("meter_ids", sa.JSON(), nullable=False),
        sa.Column("vacant_weight_pct", sa.Integer(), nullable=False),
        sa.Column("price_mu_per_kwh", sa.BigInteger(), nullable=True),
        sa.Column("tolerance_pct", sa.Integer(), nullable=False),
        sa.Column("window_h", sa.Integer(), nullable=False),
        sa.Column("checked_ts", sa.BigInteger(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["building_id"], ["building.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("property_id", "name", name="uq_apportion_pool_property_name"))
    op.create_index(op.f("ix_apportion_pool_property_id"), "apportion_pool", ["property_id"], unique=False)
    op.create_table(
        "apportion_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("month", S(length=7), nullable=False),
        sa.Column("idempotency_key", S(length=64), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("posted", sa.BigInteger(), nullable=False),
        sa.Column("total_mu", sa.BigInteger(), nullable=False),
        sa.Column("shares", sa.Integer(), nullable=False),
        sa.Column("pools", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"))
    op.create_index(op.f("ix_apportion_run_property_id"), "apportion_run", ["property_id"], unique=False)
    op.create_table(
        "apportion_share",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("month", S(length=7), nullable=False),
        sa.Column("amount_mu", sa.BigInteger(), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["ledger_entry_id"], ["ledger_entry.id"]),
        sa.ForeignKeyConstraint(["pool_id"], ["apportion_pool.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["apportion_run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "pool_id", "month", name="uq_apportion_share_account_pool_month"))
    op.create_index(op.f("ix_apportion_share_account_id"), "apportion_share", ["account_id"], unique=False)
    op.create_index(op.f("ix_apportion_share_pool_id"), "apportion_share", ["pool_id"], unique=False)
    op.create_index(op.f("ix_apportion_share_run_id"), "apportion_share", ["run_id"], unique=False)
    op.create_table(
        "theft_scan",
        sa.Column("property_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("property_id"))


def downgrade():
    op.drop_table("theft_scan")
    op.drop_index(op.f("ix_apportion_share_run_id"), table_name="apportion_share")
    op.drop_index(op.f("ix_apportion_share_pool_id"), table_name="apportion_share")
    op.drop_index(op.f("ix_apportion_share_account_id"), table_name="apportion_share")
    op.drop_table("apportion_share")
    op.drop_index(op.f("ix_apportion_run_property_id"), table_name="apportion_run")
    op.drop_table("apportion_run")
    op.drop_index(op.f("ix_apportion_pool_property_id"), table_name="apportion_pool")
    op.drop_table("apportion_pool")
