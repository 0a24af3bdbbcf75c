"""Monthly statements: statement runs (a property, a month, progress) and
the statements they issued (one per account and month).

Revision ID: 0011c
Revises: 0011b
Create Date: 2026-12-10
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011c"
down_revision = "0011b"
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade():
    op.create_table(
        "statement_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("month", S(length=7), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("error", S(length=500), nullable=False),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_statement_run_property_id"), "statement_run", ["property_id"], unique=False)
    op.create_table(
        "statement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("month", S(length=7), nullable=False),
        sa.Column("opening_mu", sa.BigInteger(), nullable=False),
        sa.Column("closing_mu", sa.BigInteger(), nullable=False),
        sa.Column("movements", sa.JSON(), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["property_id"], ["property.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["statement_run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "month", name="uq_statement_account_month"),
    )
    op.create_index(op.f("ix_statement_account_id"), "statement", ["account_id"], unique=False)
    op.create_index(op.f("ix_statement_property_id"), "statement", ["property_id"], unique=False)
    op.create_index(op.f("ix_statement_run_id"), "statement", ["run_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_statement_run_id"), table_name="statement")
    op.drop_index(op.f("ix_statement_property_id"), table_name="statement")
    op.drop_index(op.f("ix_statement_account_id"), table_name="statement")
    op.drop_table("statement")
    op.drop_index(op.f("ix_statement_run_property_id"), table_name="statement_run")
    op.drop_table("statement_run")
