"""The sales desk: numbered receipts (gapless per property), closed business
days (日结), property settings (vacant-unit relay rule, resale limit of grid
power, receipt prefix). Receipts and closed days are append-only, like the
ledger.

Revision ID: 0010
Revises: 0012
Create Date: 2026-12-01
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

from headend.core import append_only

revision = "0010"
down_revision = "0012"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString
APPEND_ONLY = ("receipt", "cash_day")


def upgrade():
    op.create_table(
        "receipt_counter",
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("property_id"))
    op.create_table(
        "receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=False),
        sa.Column("amount_mu", sa.BigInteger(), nullable=False),
        sa.Column("method", S(length=16), nullable=False),
        sa.Column("reference", S(length=100), nullable=False),
        sa.Column("reason", S(length=500), nullable=False),
        sa.Column("reverses_receipt_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source", S(length=16), nullable=False),
        sa.Column("business_day", S(length=10), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", S(length=64), nullable=True),
        sa.Column("tenant_name", S(length=200), nullable=False),
        sa.Column("unit_names", S(length=300), nullable=False),
        sa.Column("meter_ids", S(length=300), nullable=False),
        sa.Column("balance_after_mu", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["ledger_entry_id"], ["ledger_entry.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["reverses_receipt_id"], ["receipt.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ledger_entry_id", name="uq_receipt_ledger_entry"),
        sa.UniqueConstraint("property_id", "idempotency_key", name="uq_receipt_idempotency"),
        sa.UniqueConstraint("property_id", "number", name="uq_receipt_number"),
        sa.UniqueConstraint("reverses_receipt_id", name="uq_receipt_reverses"))
    op.create_index(op.f("ix_receipt_account_id"), "receipt", ["account_id"], unique=False)
    op.create_index(op.f("ix_receipt_business_day"), "receipt", ["business_day"], unique=False)
    op.create_index(op.f("ix_receipt_property_id"), "receipt", ["property_id"], unique=False)
    op.create_index(op.f("ix_receipt_user_id"), "receipt", ["user_id"], unique=False)
    op.create_table(
        "cash_day",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("day", S(length=10), nullable=False),
        sa.Column("closed", sa.BigInteger(), nullable=False),
        sa.Column("closed_by_user_id", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["closed_by_user_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("property_id", "day", name="uq_cash_day_property_day"))
    op.create_index(op.f("ix_cash_day_property_id"), "cash_day", ["property_id"], unique=False)
    op.create_table(
        "property_settings",
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("vacant_relay", S(length=16), nullable=False),
        sa.Column("grid_price_mu_per_kwh", sa.BigInteger(), nullable=True),
        sa.Column("max_markup_bp", sa.Integer(), nullable=False),
        sa.Column("receipt_prefix", S(length=8), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["updated_by_user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("property_id"))
    for t in APPEND_ONLY:
        append_only.create(op, t)


def downgrade():
    for t in APPEND_ONLY:
        append_only.drop(op, t)
    op.drop_table("property_settings")
    op.drop_index(op.f("ix_cash_day_property_id"), table_name="cash_day")
    op.drop_table("cash_day")
    for ix in ("user_id", "property_id", "business_day", "account_id"):
        op.drop_index(op.f("ix_receipt_%s" % ix), table_name="receipt")
    op.drop_table("receipt")
    op.drop_table("receipt_counter")
