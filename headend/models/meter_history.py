"""Which account each meter is billed to, and from which reading: one row
per assignment (move-in, move-out to the vacancy account, a manager's
reassignment), so that at every instant each meter's consumption belongs to
exactly one account. And meter swaps: the old meter's final reading, the new
one's opening reading."""
from typing import Optional

from sqlmodel import Field, SQLModel

from .base import Body, big, now_s

# why a meter changed account
MOVE_IN, MOVE_OUT, ASSIGN, COMMISSION = "move-in", "move-out", "assign", "commission"


class MeterAssignment(SQLModel, table=True):
    __tablename__ = "meter_assignment"
    id: Optional[int] = Field(default=None, primary_key=True)
    meter_id: int = Field(foreign_key="meter.id", index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    reason: str = Field(max_length=16)
    start: int = big(default_factory=now_s)
    # the register from which this account pays (the last billed reading), None before any
    start_energy_wh: Optional[int] = big(default=None)
    start_seq: Optional[int] = big(default=None)
    end: Optional[int] = big(default=None)
    end_energy_wh: Optional[int] = big(default=None)      # the final reading
    user_id: int = Field(foreign_key="app_user.id")


class MeterSwap(SQLModel, table=True):
    __tablename__ = "meter_swap"
    id: Optional[int] = Field(default=None, primary_key=True)
    meter_id: int = Field(foreign_key="meter.id", index=True)    # the position on the board's bus
    old_meter_id: str = Field(max_length=64)
    old_model: str = Field(default="", max_length=40)
    final_energy_wh: int = big()
    new_meter_id: str = Field(max_length=64)
    new_model: str = Field(default="", max_length=40)
    opening_energy_wh: int = big()
    ledger_entry_id: Optional[int] = Field(default=None, foreign_key="ledger_entry.id")   # the residual charge
    ts: int = big(default_factory=now_s)
    user_id: int = Field(foreign_key="app_user.id")


class MeterAssignmentPublic(SQLModel):
    id: int
    meter_id: int
    account_id: int
    reason: str
    start: int
    start_energy_wh: Optional[int]
    end: Optional[int]
    end_energy_wh: Optional[int]
    user_id: int


class MeterSwapIn(Body):
    new_meter_id: str = Field(min_length=1, max_length=64, description="the new meter's id (as in the board's "
                                                                       "config.json; the same id keeps the board's count)")
    new_model: Optional[str] = Field(default=None, max_length=40, description="default: the old meter's model")
    final_kwh: Optional[str] = Field(default=None, max_length=24,
                                     description='the old meter\'s final register (kWh, e.g. "12345.678"); '
                                                 "default: its last reading")
    opening_kwh: str = Field(default="0", max_length=24, description="the new meter's register at installation (kWh)")


class MeterSwapPublic(SQLModel):
    id: int
    meter_id: int
    old_meter_id: str
    final_energy_wh: int
    new_meter_id: str
    opening_energy_wh: int
    residual_mu: int = 0
    ts: int
