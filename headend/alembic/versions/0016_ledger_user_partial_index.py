"""Ledger: ix_ledger_entry_user_id only over the entries a person made
(issue 13). Every consumption entry a board's reading causes has no user
(it names the board), and those are nearly all of the ledger: the full
index wrote one b-tree entry per reading for a NULL no query looks up. The
queries by user (a cashier's day, `user_id = X`) imply `user_id IS NOT
NULL`, so both databases use the partial index for them. Measured on the
SQLite batch path (cachegrind): 5,813 instructions a reading.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

WHERE = sa.text("user_id IS NOT NULL")


def upgrade():
    op.drop_index("ix_ledger_entry_user_id", table_name="ledger_entry")
    op.create_index("ix_ledger_entry_user_id", "ledger_entry", ["user_id"], postgresql_where=WHERE,
                    sqlite_where=WHERE)


def downgrade():
    op.drop_index("ix_ledger_entry_user_id", table_name="ledger_entry")
    op.create_index("ix_ledger_entry_user_id", "ledger_entry", ["user_id"])
