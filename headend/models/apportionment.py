"""Apportionment (公摊): pools of common-area or loss energy shared among the
units of a building (or of a whole property), and what each account was
charged for its share of a month (the published breakdown).

    ApportionPool   a pool: the meters it measures (common-area meters; for a
                    loss pool the master meter(s)), the split rule, the weight
                    of vacant units, the price
    ApportionRun    one posting of a month by a manager (audited)
    ApportionShare  an account's share of one pool in one month: its numbers
                    (detail) and the ledger entry that charged it; unique per
                    (account, pool, month), so a month is posted once

docs/apportionment.md says how shares are computed.
"""
from typing import Any, Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import MONTH_PATTERN, Body, BodyId, big, id_field, now_s

KIND_COMMON, KIND_LOSS = "common", "loss"
POOL_KINDS = (KIND_COMMON, KIND_LOSS)
RULE_AREA, RULE_CONSUMPTION, RULE_EQUAL = "area", "consumption", "equal"
RULES = (RULE_AREA, RULE_CONSUMPTION, RULE_EQUAL)
KIND_PATTERN = r"^(common|loss)$"
RULE_PATTERN = r"^(area|consumption|equal)$"
MAX_POOL_METERS = 50


class ApportionPool(SQLModel, table=True):
    __tablename__ = "apportion_pool"
    __table_args__ = (UniqueConstraint("property_id", "name", name="uq_apportion_pool_property_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    building_id: Optional[int] = Field(default=None, foreign_key="building.id")   # None: the whole property
    name: str = Field(max_length=100)
    kind: str = Field(default=KIND_COMMON, max_length=16)
    rule: str = Field(default=RULE_AREA, max_length=16)
    # common: the common-area meters; loss: the master meter(s)   (meter pks)
    meter_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    vacant_weight_pct: int = Field(default=0)          # 0: vacant units excluded; 50: half weight; 100: full
    price_mu_per_kwh: Optional[int] = big(default=None)   # None: the property's tariff (flat band)
    # loss pools, theft check: master − Σ sub-meters beyond this share of master over the window
    tolerance_pct: int = Field(default=8)
    window_h: int = Field(default=24)
    checked_ts: Optional[int] = big(default=None)      # the theft check's last run on this pool
    active: bool = True
    created: int = big(default_factory=now_s)
    updated: int = big(default_factory=now_s)


class PoolBase(SQLModel):
    building_id: Optional[int] = id_field(default=None, description="absent: the whole property")
    rule: str = Field(default=RULE_AREA, schema_extra={"pattern": RULE_PATTERN},
                      description="area (floor area), consumption (the units' own use) or equal")
    meter_ids: list[BodyId] = Field(default_factory=list, max_length=MAX_POOL_METERS,
                                    description="common: the common-area meters; loss: the master meter(s)")
    vacant_weight_pct: int = Field(default=0, ge=0, le=100, description="a vacant unit's weight (0: excluded)")
    price: Optional[str] = Field(default=None, max_length=24,
                                 description='pool price per kWh, e.g. "0.6500"; absent: the property\'s tariff')
    tolerance_pct: int = Field(default=8, ge=1, le=100, description="loss pools: theft check tolerance")
    window_h: int = Field(default=24, ge=1, le=24 * 7, description="loss pools: theft check window (hours)")


class PoolCreate(PoolBase, Body):
    property_id: int = id_field()
    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(default=KIND_COMMON, schema_extra={"pattern": KIND_PATTERN})


class PoolUpdate(PoolBase, Body):
    name: str = Field(min_length=1, max_length=100)
    active: bool = True


class PoolPublic(SQLModel):
    id: int
    property_id: int
    building_id: Optional[int]
    name: str
    kind: str
    rule: str
    meter_ids: list[int]
    vacant_weight_pct: int
    price_mu_per_kwh: Optional[int]
    tolerance_pct: int
    window_h: int
    active: bool


class ApportionRun(SQLModel, table=True):
    __tablename__ = "apportion_run"
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    month: str = Field(max_length=7)
    idempotency_key: Optional[str] = Field(default=None, max_length=64, unique=True)
    user_id: int = Field(foreign_key="app_user.id")
    posted: int = big(default_factory=now_s)
    total_mu: int = big(default=0)
    shares: int = 0
    # per pool: its numbers as the preview showed them (energy, price, amount, lines)
    pools: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ApportionShare(SQLModel, table=True):
    __tablename__ = "apportion_share"
    __table_args__ = (UniqueConstraint("account_id", "pool_id", "month", name="uq_apportion_share_account_pool_month"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="apportion_run.id", index=True)
    pool_id: int = Field(foreign_key="apportion_pool.id", index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    month: str = Field(max_length=7)
    amount_mu: int = big()                 # charged (positive): the ledger entry is minus this
    energy_wh: int = big()                 # its share of the pool's energy
    ledger_entry_id: Optional[int] = Field(default=None, foreign_key="ledger_entry.id")
    # the published breakdown: pool, rule, pool energy and amount, its units with their weights
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ApportionPost(Body):
    property_id: int = id_field()
    month: str = Field(schema_extra={"pattern": MONTH_PATTERN}, description='local calendar month, "2026-11"')
    idempotency_key: Optional[str] = Field(default=None, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]{8,64}$"})


class RunPublic(SQLModel):
    id: Optional[int]
    property_id: int
    month: str
    posted: Optional[int]
    total_mu: int
    total: str
    shares: int
    already_posted: bool = False
    pools: list[dict[str, Any]]
