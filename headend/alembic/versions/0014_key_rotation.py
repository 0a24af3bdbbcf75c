"""Key rotation that cannot lock a board out (issue 14): the confirmed key
plus a list of pending rekeys instead of one "next" key.

A rekey in progress in a 0.2 database (key_next_hex + rekey_nonce) becomes
one pending entry. Also the code id the board reports in its hello.

Revision ID: 0014
Revises: 0002
Create Date: 2026-12-01
"""
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("concentrator") as b:
        b.add_column(sa.Column("key_pending", sa.JSON(), nullable=True))
        b.add_column(sa.Column("rekey_sent_at", sa.BigInteger(), nullable=True))
        b.add_column(sa.Column("code", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, key_next_hex, rekey_nonce FROM concentrator")).all()
    for cid, nxt, nonce in rows:
        pending = [[nonce, nxt]] if nxt and nonce else []
        conn.execute(sa.text("UPDATE concentrator SET key_pending = :p WHERE id = :i"),
                     {"p": json.dumps(pending), "i": cid})
    with op.batch_alter_table("concentrator") as b:
        b.alter_column("key_pending", existing_type=sa.JSON(), nullable=False)
        b.drop_column("key_next_hex")
        b.drop_column("rekey_nonce")


def downgrade():
    with op.batch_alter_table("concentrator") as b:
        b.add_column(sa.Column("key_next_hex", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        b.add_column(sa.Column("rekey_nonce", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    conn = op.get_bind()
    for cid, pending in conn.execute(sa.text("SELECT id, key_pending FROM concentrator")).all():
        p = json.loads(pending) if isinstance(pending, str) else (pending or [])
        if p:
            conn.execute(sa.text("UPDATE concentrator SET rekey_nonce = :n, key_next_hex = :k WHERE id = :i"),
                         {"n": p[-1][0], "k": p[-1][1], "i": cid})
    with op.batch_alter_table("concentrator") as b:
        b.drop_column("key_pending")
        b.drop_column("rekey_sent_at")
        b.drop_column("code")
