"""The account lifecycle: which account each meter is billed to from which
reading (meter_assignment), meter swaps (final and opening readings), and on
the meter which account and tariff its billing accumulator belongs to
(tariff_key) and the board's own accumulator once they differ
(board_tariff_state).

Revision ID: 0010a
Revises: 0010
Create Date: 2026-12-01
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010a"
down_revision = "0010"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade():
    op.create_table(
        "meter_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("reason", S(length=16), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("start_energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("start_seq", sa.BigInteger(), nullable=True),
        sa.Column("end", sa.BigInteger(), nullable=True),
        sa.Column("end_energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_meter_assignment_account_id"), "meter_assignment", ["account_id"], unique=False)
    op.create_index(op.f("ix_meter_assignment_meter_id"), "meter_assignment", ["meter_id"], unique=False)
    op.create_table(
        "meter_swap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("old_meter_id", S(length=64), nullable=False),
        sa.Column("old_model", S(length=40), nullable=False),
        sa.Column("final_energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("new_meter_id", S(length=64), nullable=False),
        sa.Column("new_model", S(length=40), nullable=False),
        sa.Column("opening_energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("ledger_entry_id", sa.Integer(), nullable=True),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ledger_entry_id"], ["ledger_entry.id"]),
        sa.ForeignKeyConstraint(["meter_id"], ["meter.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"))
    op.create_index(op.f("ix_meter_swap_meter_id"), "meter_swap", ["meter_id"], unique=False)
    with op.batch_alter_table("meter") as b:
        b.add_column(sa.Column("tariff_key", S(length=120), nullable=True))
        b.add_column(sa.Column("board_tariff_state", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("meter") as b:
        b.drop_column("board_tariff_state")
        b.drop_column("tariff_key")
    op.drop_index(op.f("ix_meter_swap_meter_id"), table_name="meter_swap")
    op.drop_table("meter_swap")
    op.drop_index(op.f("ix_meter_assignment_meter_id"), table_name="meter_assignment")
    op.drop_index(op.f("ix_meter_assignment_account_id"), table_name="meter_assignment")
    op.drop_table("meter_assignment")
