"""Tariff versions. A tariff is every row with the same (property_id, name);
`spec` is the full version spec of concentrator.tariff (docs/tariffs.md),
whose "version"/"effective" equal the columns."""
from typing import Any, Optional

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from .base import big, now_s


class Tariff(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: Optional[int] = Field(default=None, foreign_key="property.id", index=True)
    name: str
    version: int = 1
    effective: int = big(default=0)          # Unix s from which it applies
    kind: str = "flat"   # flat, tiered, tou, tou+tiers (display)
    price_mu_per_kwh: int = big(default=0)   # the price of a tariff without time-of-use
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")
    created: int = big(default_factory=now_s)


class TariffPublic(SQLModel):
    id: int
    property_id: Optional[int]
    name: str
    version: int
    effective: int
    kind: str
    price_mu_per_kwh: int
    spec: dict[str, Any]
    created_by_user_id: Optional[int] = None
    created: int
