"""Readings as the boards recorded them: idempotent on (concentrator, seq)."""
from typing import Optional

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import big, now_s


class Reading(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("concentrator_id", "seq", name="uq_reading_conc_seq"),
                      # a meter's readings in a time window (services/usage.py)
                      Index("ix_reading_meter_ts", "meter_id", "ts"))
    id: Optional[int] = Field(default=None, primary_key=True)
    concentrator_id: int = Field(foreign_key="concentrator.id", index=True)
    seq: int = big()
    meter_index: int
    meter_id: Optional[int] = Field(default=None, foreign_key="meter.id", index=True)
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
