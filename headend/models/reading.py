"""Readings as the boards recorded them: idempotent on (concentrator, seq).

On PostgreSQL the table is partitioned by month of `ts` (core/partitions.py,
migration 0013): its primary key is (id, ts) there and the idempotency key
UNIQUE (concentrator_id, seq, ts); core/partitions.py says why that still
means one row per (concentrator, seq). SQLite keeps one table with
UNIQUE (concentrator_id, seq). `info["dialects"]` names the database a
constraint exists on (alembic/env.py compares only those): the foreign keys
are SQLite's; PostgreSQL checks the same references once per statement
(core/statement_refs.py)."""
from typing import Optional

from sqlalchemy import JSON, BigInteger, Column, ForeignKeyConstraint, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import big, now_s


class Reading(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("concentrator_id", "seq", name="uq_reading_conc_seq", info={"dialects": ("sqlite",)}),
        UniqueConstraint("concentrator_id", "seq", "ts", name="uq_reading_conc_seq_ts",
                         info={"dialects": ("postgresql",)}),
        Index("ix_reading_ts", "ts", postgresql_using="brin"),      # retention, time ranges
        Index("ix_reading_meter_ts", "meter_id", "ts"),             # a meter's readings in a window (services/usage)
        # foreign keys on SQLite; on PostgreSQL checked once per statement (core/statement_refs.py)
        ForeignKeyConstraint(["concentrator_id"], ["concentrator.id"], info={"dialects": ("sqlite",)}),
        ForeignKeyConstraint(["meter_id"], ["meter.id"], info={"dialects": ("sqlite",)}),
    )
    # BIGINT: billions of readings (SQLite's INTEGER PRIMARY KEY is 64-bit already)
    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                             primary_key=True))
    concentrator_id: int                   # concentrator.id (see __table_args__)
    seq: int = big()
    meter_index: int
    meter_id: Optional[int] = Field(default=None)      # meter.id; indexed by ix_reading_meter_ts
    ts: int = big()
    energy_wh: int = big()
    power_w: int = big(default=0)
    flags: int = 0
    bands: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # values[4:]
    charged_mu: Optional[int] = big(default=None)    # the board's cumulative charge (values[3])
    billed_mu: Optional[int] = big(default=None)     # what the head-end charged for this reading
    billed: bool = False
    received: int = big(default_factory=now_s)


class ReadingPublic(SQLModel):
    id: int
    seq: int
    meter_id: Optional[int]
    ts: int
    energy_wh: int
    power_w: int
    flags: int
    billed_mu: Optional[int]
