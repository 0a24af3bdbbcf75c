"""Set-based ingest (issue 13): the recharge count kept on the account, the
highest stored sequence and the anti-replay window kept on the board.

Revision ID: 0013a
Revises: 0014h
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0013a"
down_revision = "0014h"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("account") as b:
        b.add_column(sa.Column("recharge_count", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("concentrator") as b:
        b.add_column(sa.Column("top_seq", sa.BigInteger(), nullable=False, server_default="0"))
        b.add_column(sa.Column("up_window", sa.BigInteger(), nullable=False, server_default="0"))
    # filled once from what is stored (sales less reversals; highest seq per board)
    op.execute("UPDATE account SET recharge_count = COALESCE((SELECT sum(CASE l.kind WHEN 'recharge' THEN 1 "
               "ELSE -1 END) FROM ledger_entry l WHERE l.account_id = account.id "
               "AND l.kind IN ('recharge', 'reversal')), 0)")
    op.execute("UPDATE concentrator SET top_seq = COALESCE((SELECT max(seq) FROM reading r "
               "WHERE r.concentrator_id = concentrator.id), 0)")
    # what came before the window existed counts as seen (no old message is let in once more)
    op.execute("UPDATE concentrator SET up_window = %d" % ((1 << 63) - 1))
    op.execute("UPDATE concentrator SET top_seq = COALESCE((SELECT max(seq) FROM event e "
               "WHERE e.concentrator_id = concentrator.id), 0) WHERE COALESCE((SELECT max(seq) FROM event e "
               "WHERE e.concentrator_id = concentrator.id), 0) > top_seq")


def downgrade():
    with op.batch_alter_table("concentrator") as b:
        b.drop_column("up_window")
        b.drop_column("top_seq")
    with op.batch_alter_table("account") as b:
        b.drop_column("recharge_count")
