"""Online top-ups: payment orders opened with a provider and the verified
notifications the provider sent (unique per nonce, so a replay is known).

Revision ID: 0010b
Revises: 0010a
Create Date: 2026-12-01
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010b"
down_revision = "0010a"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade():
    op.create_table(
        "payment_order",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_no", S(length=32), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("provider", S(length=16), nullable=False),
        sa.Column("method", S(length=16), nullable=False),
        sa.Column("amount_mu", sa.BigInteger(), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("paid", sa.BigInteger(), nullable=True),
        sa.Column("provider_txn_id", S(length=64), nullable=True),
        sa.Column("receipt_id", sa.Integer(), nullable=True),
        sa.Column("pay", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["receipt_id"], ["receipt.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "provider_txn_id", name="uq_payment_order_txn"))
    op.create_index(op.f("ix_payment_order_account_id"), "payment_order", ["account_id"], unique=False)
    op.create_index(op.f("ix_payment_order_order_no"), "payment_order", ["order_no"], unique=True)
    op.create_index(op.f("ix_payment_order_property_id"), "payment_order", ["property_id"], unique=False)
    op.create_table(
        "payment_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", S(length=16), nullable=False),
        sa.Column("nonce", S(length=64), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("order_no", S(length=32), nullable=False),
        sa.Column("provider_txn_id", S(length=64), nullable=False),
        sa.Column("outcome", S(length=32), nullable=False),
        sa.Column("detail", S(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "nonce", name="uq_payment_notice_nonce"))


def downgrade():
    op.drop_table("payment_notice")
    for ix in ("property_id", "order_no", "account_id"):
        op.drop_index(op.f("ix_payment_order_%s" % ix), table_name="payment_order")
    op.drop_table("payment_order")
