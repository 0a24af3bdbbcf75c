"""Interval rollups of the readings: per meter, per local hour, day and
month, per tariff band: energy (Wh), cost (mu) and how many readings.

Kept up to date by services/rollups.after_billing in the ingest transaction
(late and backlog readings included) and recomputed from the raw readings
by services/rollups.rebuild. `start` is the bucket's start (Unix s UTC) in
the property's local time (tz_offset_s); `band` is a tariff band name
(concentrator.tariff.BANDS) or "" for energy a meter did not give band
registers for. A bucket's figures are the sum over its band rows.

RollupMark "since": readings before that time may not be rolled up (they
were stored before the rollups existed); the retention guard keeps them
until a full rebuild clears it (0)."""
from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from .base import big

PERIODS = ("h", "d", "m")      # hour, day, month


class Rollup(SQLModel, table=True):
    __table_args__ = (
        Index("ix_rollup_period_start", "period", "start", "meter_id"),   # a property's month: all meters
    )
    meter_id: int = Field(foreign_key="meter.id", primary_key=True)
    period: str = Field(primary_key=True, max_length=1)
    start: int = big(primary_key=True)
    band: str = Field(default="", primary_key=True, max_length=12)
    energy_wh: int = big(default=0)
    cost_mu: int = big(default=0)
    readings: int = big(default=0)
    first_ts: Optional[int] = big(default=None)     # the first reading inside


class RollupMark(SQLModel, table=True):
    __tablename__ = "rollup_mark"
    name: str = Field(primary_key=True, max_length=20)
    ts: int = big(default=0)
