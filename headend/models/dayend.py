"""Day end (日结): a property's business day, once closed, keeps its report
and takes no more receipts (a correction made later counts in the next open
day). Only closed days have a row."""
from typing import Any, Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, big, now_s

DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class CashDay(SQLModel, table=True):
    __tablename__ = "cash_day"
    __table_args__ = (UniqueConstraint("property_id", "day", name="uq_cash_day_property_day"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    day: str = Field(max_length=10)                  # YYYY-MM-DD, the property's local calendar
    closed: int = big(default_factory=now_s)
    closed_by_user_id: int = Field(foreign_key="app_user.id")
    totals: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class DayCloseIn(Body):
    property_id: int = Field(ge=1)
    day: str = Field(schema_extra={"pattern": DAY_PATTERN}, description="YYYY-MM-DD (local)")
