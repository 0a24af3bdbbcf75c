"""Meters: one per position on a board's bus, sitting in a unit, billed to
the account that occupies the unit (Meter.account_id, kept by the account
services)."""
from typing import Any, Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, big, id_field


class Meter(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("concentrator_id", "index", name="uq_meter_conc_index"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    concentrator_id: int = Field(foreign_key="concentrator.id", index=True)
    index: int                                   # position in the board's meter list
    meter_id: str = Field(index=True, unique=True)
    model: str = ""
    unit_id: Optional[int] = Field(default=None, foreign_key="unit.id", index=True)
    account_id: Optional[int] = Field(default=None, foreign_key="account.id", index=True)
    # billing pointer: the last reading that was billed
    billed_seq: Optional[int] = big(default=None)
    billed_energy_wh: Optional[int] = big(default=None)
    billed_ts: Optional[int] = big(default=None)
    # concentrator.tariff accumulator of this meter (tariff.new_state(), JSON)
    tariff_state: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    # which account and tariff `tariff_state` accumulates for ("a<account id>/<tariff name>"):
    # when it changes, billing starts a new accumulator (services.billing.switch_state)
    tariff_key: Optional[str] = Field(default=None, max_length=120)
    # the board's own accumulator (the property's tariff since commissioning), kept
    # apart once the meter's billing differs from it; None while they are the same
    board_tariff_state: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    # the board's cumulative charged_mu in the last billed reading: `c` of credit pushes
    board_charged_mu: Optional[int] = big(default=None)
    # latest state seen (display)
    last_seq: Optional[int] = big(default=None)
    last_energy_wh: Optional[int] = big(default=None)
    last_power_w: Optional[int] = big(default=None)
    last_ts: Optional[int] = big(default=None)
    relay_closed: Optional[bool] = None
    online: Optional[bool] = None
    local_credit_mu: Optional[int] = big(default=None)


class MeterBusErrors(SQLModel, table=True):
    """A meter's RS485 error counters as its board last reported them (the
    board's, since its boot `boot`): one row per meter, kept by every status
    message (ingest/status.py: rewritten only when the counters or the boot
    changed; `ts` is since when the row holds them), read by the meter lists."""
    __tablename__ = "meter_bus_errors"
    meter_id: int = Field(foreign_key="meter.id", primary_key=True)
    timeouts: int = big(default=0)
    crc: int = big(default=0)
    wrong_address: int = big(default=0)
    exceptions: int = big(default=0)
    offline: int = big(default=0)
    boot: Optional[int] = big(default=None)
    ts: int = big(default=0)


class MeterCreate(Body):
    concentrator_id: int = id_field()
    meter_id: str = Field(min_length=1, max_length=64)
    model: str = Field(default="", max_length=40)
    index: Optional[int] = Field(default=None, ge=0, le=255)
    unit_id: Optional[int] = id_field(default=None)
    account_id: Optional[int] = id_field(default=None)
    opening_energy_wh: Optional[int] = Field(default=None, ge=0, le=10 ** 12,
                                             description="register at commissioning (Wh): billing baseline")


class MeterAccountUpdate(Body):
    account_id: Optional[int] = id_field()


class MeterPublic(SQLModel):
    id: int
    concentrator_id: int
    index: int
    meter_id: str
    model: str
    unit_id: Optional[int]
    account_id: Optional[int]
    billed_energy_wh: Optional[int]
    last_energy_wh: Optional[int]
    last_power_w: Optional[int]
    last_ts: Optional[int]
    relay_closed: Optional[bool]
    online: Optional[bool]


class BusErrors(SQLModel):
    timeouts: int = 0
    crc: int = 0
    wrong_address: int = 0
    exceptions: int = 0
    offline: int = 0
    ts: Optional[int] = None


class MeterRow(SQLModel):
    """A meter as the staff list shows it: its account, balance, last reading, relay."""
    id: int
    meter_id: str
    model: str
    index: int
    concentrator: Optional[str]
    concentrator_online: bool
    property_id: Optional[int]
    unit_id: Optional[int]
    unit: Optional[str] = None
    account_id: Optional[int]
    tenant: Optional[str]
    balance_mu: Optional[int]
    balance: Optional[str]
    low_balance: bool
    last_energy_wh: Optional[int]
    last_kwh: Optional[str]
    last_power_w: Optional[int]
    last_reading_ts: Optional[int]
    billed_energy_wh: Optional[int]
    relay_closed: Optional[bool]
    meter_online: Optional[bool]
    local_credit_mu: Optional[int]
    last_seen: Optional[int]
    bus_errors: Optional[BusErrors] = None
