"""Readings for years: on PostgreSQL the readings table is partitioned by
month of ts (core/partitions.py), with a BRIN index on ts; on SQLite it
stays one table and gets a plain index on ts. Both lose the index on
concentrator_id alone (the idempotency key starts with it).

PostgreSQL: the table is rebuilt with its data. A partitioned table's keys
must contain the partition key: primary key (id, ts), idempotency key
UNIQUE (concentrator_id, seq, ts) (core/partitions.py explains why a
(concentrator, seq) is still stored once). id becomes BIGINT. Columns,
foreign keys and other indexes are taken from the table as it is, so
whatever an earlier migration added to it survives the rebuild.

Revision ID: 0013
Revises: 0010b
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

from headend.core import partitions

revision = "0013"
down_revision = "0010b"
branch_labels = None
depends_on = None

OLD = "reading_unpartitioned"
DROPPED_INDEX = "ix_reading_concentrator_id"


def _pg():
    return op.get_bind().dialect.name == "postgresql"


def _carried(insp, table, skip):
    """Foreign keys and non-unique indexes of `table`, to make again."""
    fks = insp.get_foreign_keys(table)
    idx = [i for i in insp.get_indexes(table) if not i.get("unique") and i["name"] not in skip
           and all(c is not None for c in i["column_names"])]
    return fks, idx


def _make_keys(table, fks, idx):
    for fk in fks:
        op.create_foreign_key(fk["name"], table, fk["referred_table"], fk["constrained_columns"],
                              fk["referred_columns"])
    for i in idx:
        op.create_index(i["name"], table, i["column_names"])


def upgrade():
    if not _pg():
        with op.batch_alter_table("reading") as b:
            b.drop_index(DROPPED_INDEX)
            b.create_index("ix_reading_ts", ["ts"])
        return
    bind = op.get_bind()
    fks, idx = _carried(sa.inspect(bind), "reading", skip={DROPPED_INDEX, "ix_reading_ts"})
    op.execute("ALTER TABLE reading RENAME TO %s" % OLD)
    op.execute("CREATE TABLE reading (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (ts)"
               % OLD)
    op.execute("ALTER TABLE reading ALTER COLUMN id TYPE BIGINT")
    op.execute("CREATE TABLE %s PARTITION OF reading FOR VALUES FROM (MINVALUE) TO (%d)"
               % (partitions.UNDATED, partitions.TS_DATED))
    op.execute("CREATE TABLE %s PARTITION OF reading DEFAULT" % partitions.DEFAULT)
    first = bind.execute(sa.text("SELECT min(ts) FROM %s WHERE ts >= %d" % (OLD, partitions.TS_DATED))).scalar()
    partitions.ensure(bind, since=first)
    op.execute("INSERT INTO reading SELECT * FROM %s" % OLD)
    op.execute("ALTER SEQUENCE reading_id_seq OWNED BY NONE")
    op.execute("DROP TABLE %s" % OLD)
    op.execute("ALTER SEQUENCE reading_id_seq AS bigint OWNED BY reading.id")
    op.execute("ALTER TABLE reading ADD CONSTRAINT reading_pkey PRIMARY KEY (id, ts)")
    op.execute("ALTER TABLE reading ADD CONSTRAINT uq_reading_conc_seq_ts UNIQUE (concentrator_id, seq, ts)")
    _make_keys("reading", fks, idx)
    op.execute("CREATE INDEX ix_reading_ts ON reading USING brin (ts)")


def downgrade():
    if not _pg():
        with op.batch_alter_table("reading") as b:
            b.drop_index("ix_reading_ts")
            b.create_index(DROPPED_INDEX, ["concentrator_id"])
        return
    bind = op.get_bind()
    fks, idx = _carried(sa.inspect(bind), "reading", skip={"ix_reading_ts"})
    op.execute("CREATE TABLE %s (LIKE reading INCLUDING DEFAULTS INCLUDING CONSTRAINTS)" % OLD)
    op.execute("INSERT INTO %s SELECT * FROM reading" % OLD)
    op.execute("ALTER SEQUENCE reading_id_seq OWNED BY NONE")
    op.execute("DROP TABLE reading CASCADE")          # with its partitions
    op.execute("ALTER TABLE %s RENAME TO reading" % OLD)
    op.execute("ALTER TABLE reading ALTER COLUMN id TYPE INTEGER")
    op.execute("ALTER SEQUENCE reading_id_seq AS integer OWNED BY reading.id")
    op.execute("ALTER TABLE reading ADD CONSTRAINT reading_pkey PRIMARY KEY (id)")
    op.execute("ALTER TABLE reading ADD CONSTRAINT uq_reading_conc_seq UNIQUE (concentrator_id, seq)")
    _make_keys("reading", fks, idx)
    op.create_index(DROPPED_INDEX, "reading", ["concentrator_id"])
