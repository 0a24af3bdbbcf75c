"""SQLModel tables. Money in mu (1/10000 currency unit), energy in Wh, time in
Unix seconds UTC: all integers (BIGINT in the database)."""
import time
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

LEDGER_KINDS = ("recharge", "consumption", "apportionment", "adjustment", "refund")


def now_s() -> int:
    return int(time.time())


def _big(**kw):
    return Field(sa_type=BigInteger, **kw)


class Site(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    tz_offset_s: int = 28800
    # name of the tariff (a series of Tariff versions) pushed to the boards
    tariff_name: Optional[str] = None
    created: int = _big(default_factory=now_s)


class Tariff(SQLModel, table=True):
    """One version of a tariff. A tariff is every row with the same
    (site_id, name); `spec` is the full version spec of concentrator.tariff
    (docs/tariffs.md), whose "version"/"effective" equal the columns."""
    id: Optional[int] = Field(default=None, primary_key=True)
    site_id: Optional[int] = Field(default=None, foreign_key="site.id", index=True)
    name: str
    version: int = 1
    effective: int = _big(default=0)          # Unix s from which it applies
    kind: str = "flat"                        # flat, tiered, tou, tou+tiers (display)
    price_mu_per_kwh: int = _big(default=0)   # the price of a tariff without time-of-use
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created: int = _big(default_factory=now_s)


class Account(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    site_id: Optional[int] = Field(default=None, foreign_key="site.id", index=True)
    tenant: str
    balance_mu: int = _big(default=0)         # cache of sum(ledger); updated atomically
    low_balance_threshold_mu: int = _big(default=0)
    tariff_id: Optional[int] = Field(default=None, foreign_key="tariff.id")
    created: int = _big(default_factory=now_s)


class Concentrator(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    dev: str = Field(index=True, unique=True)  # device id = MQTT topic segment
    site_id: Optional[int] = Field(default=None, foreign_key="site.id", index=True)
    key_hex: str                                # 32-byte HMAC key, hex
    last_up_n: int = _big(default=-1)           # highest accepted uplink counter
    last_down_n: int = _big(default=0)          # last downlink counter used
    # rekey in progress: the derived key (downlinks use it at once; uplinks are
    # accepted under both until the first valid one under the new key)
    key_next_hex: Optional[str] = None
    rekey_nonce: Optional[str] = None
    rekey_started: Optional[int] = _big(default=None)
    acked_seq: int = _big(default=0)            # highest contiguous committed seq
    last_seen: Optional[int] = _big(default=None)
    online: bool = False
    fw: Optional[str] = None
    boot: Optional[int] = None
    journal_last: Optional[int] = _big(default=None)   # board's highest seq written
    pending: Optional[int] = None                       # board's unacked records
    created: int = _big(default_factory=now_s)


class Meter(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("concentrator_id", "index", name="uq_meter_conc_index"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    concentrator_id: int = Field(foreign_key="concentrator.id", index=True)
    index: int                                   # position in the board's meter list
    meter_id: str = Field(index=True, unique=True)
    model: str = ""
    account_id: Optional[int] = Field(default=None, foreign_key="account.id", index=True)
    # billing pointer: the last reading that was billed
    billed_seq: Optional[int] = _big(default=None)
    billed_energy_wh: Optional[int] = _big(default=None)
    billed_ts: Optional[int] = _big(default=None)
    # concentrator.tariff accumulator of this meter (tariff.new_state(), JSON)
    tariff_state: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    # the board's cumulative charged_mu in the last billed reading: `c` of credit pushes
    board_charged_mu: Optional[int] = _big(default=None)
    # latest state seen (display)
    last_seq: Optional[int] = _big(default=None)
    last_energy_wh: Optional[int] = _big(default=None)
    last_power_w: Optional[int] = _big(default=None)
    last_ts: Optional[int] = _big(default=None)
    relay_closed: Optional[bool] = None
    online: Optional[bool] = None
    local_credit_mu: Optional[int] = _big(default=None)


class Reading(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("concentrator_id", "seq", name="uq_reading_conc_seq"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    concentrator_id: int = Field(foreign_key="concentrator.id", index=True)
    seq: int = _big()
    meter_index: int
    meter_id: Optional[int] = Field(default=None, foreign_key="meter.id", index=True)
    ts: int = _big()
    energy_wh: int = _big()
    power_w: int = _big(default=0)
    flags: int = 0
    bands: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # values[4:]
    charged_mu: Optional[int] = _big(default=None)    # the board's cumulative charge (values[3])
    billed_mu: Optional[int] = _big(default=None)     # what the head-end charged for this reading
    billed: bool = False
    received: int = _big(default_factory=now_s)


class Event(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("concentrator_id", "seq", name="uq_event_conc_seq"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    concentrator_id: Optional[int] = Field(default=None, foreign_key="concentrator.id", index=True)
    seq: Optional[int] = _big(default=None)     # journal seq (None: head-end's own event)
    meter_index: Optional[int] = None
    meter_id: Optional[int] = Field(default=None, foreign_key="meter.id")
    code: int
    detail: Optional[int] = None
    values: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    ts: int = _big(default_factory=now_s)
    message: str = ""
    actor: Optional[str] = None                 # who asked for it (commands from staff)
    received: int = _big(default_factory=now_s)


class LedgerEntry(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    kind: str                                    # one of LEDGER_KINDS
    amount_mu: int = _big()                      # signed: + credit, - debit
    balance_after_mu: int = _big()
    actor: str                                   # person or device id
    reference: str = ""                          # e.g. "reading:42"
    note: str = ""
    created: int = _big(default_factory=now_s)
