"""What a property manager sets once for the whole property: the relay rule
of vacant units, the resale limit of grid power (转供电: the official price
and the allowed mark-up), the prefix of receipt numbers. A property without
a row has the defaults."""
from typing import Optional

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from .base import Body, big, now_s

# what the relay of a meter in a vacant unit does
VACANT_OPEN = "open"        # power off until someone moves in (the default)
VACANT_CLOSED = "closed"    # power stays on, charged to the vacancy account (showings, renovation)
VACANT_CREDIT = "credit"    # follows the vacancy account's credit, like any account
VACANT_RULES = (VACANT_OPEN, VACANT_CLOSED, VACANT_CREDIT)
DEFAULT_MAX_MARKUP_BP = 1500      # 15.00 %: a common provincial limit; configuration, not law
DEFAULT_RECEIPT_PREFIX = "R"


class PropertySettings(SQLModel, table=True):
    __tablename__ = "property_settings"
    property_id: int = Field(foreign_key="property.id", primary_key=True)
    vacant_relay: str = Field(default=VACANT_OPEN, max_length=16)
    # 转供电: the official (grid) flat-period price, mu per kWh; None: no limit checked
    grid_price_mu_per_kwh: Optional[int] = big(default=None)
    max_markup_bp: int = Field(default=DEFAULT_MAX_MARKUP_BP)     # basis points: 1500 = 15 %
    receipt_prefix: str = Field(default=DEFAULT_RECEIPT_PREFIX, max_length=8)
    # the site's meter models (JSON object, docs/meters.md "A model in the site
    # file"): checked with the board's own model_check, emitted into every
    # board's config.json by `wattkeeper provision concentrator`; None: none
    meter_models: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    updated: int = big(default_factory=now_s)
    updated_by_user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")


class PropertySettingsPublic(SQLModel):
    property_id: int
    vacant_relay: str
    grid_price_mu_per_kwh: Optional[int]
    max_markup_bp: int
    max_price_mu_per_kwh: Optional[int] = None
    receipt_prefix: str


class PropertySettingsUpdate(Body):
    vacant_relay: Optional[str] = Field(default=None, schema_extra={"pattern": r"^(open|closed|credit)$"},
                                        description="open (power off), closed (power on) or credit")
    grid_price_mu_per_kwh: Optional[int] = Field(default=None, ge=0, le=10 ** 9,
                                                 description="official flat-period price (mu per kWh)")
    clear_grid_price: bool = Field(default=False, description="no resale limit any more")
    max_markup_bp: Optional[int] = Field(default=None, ge=0, le=100000, description="1500 = 15 %")
    receipt_prefix: Optional[str] = Field(default=None, max_length=8,
                                          schema_extra={"pattern": r"^[A-Za-z0-9-]{0,8}$"})
