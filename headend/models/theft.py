"""Bypass and theft detection (services/theft.py): when each property's
meters were last looked at, so that the periodic check reads a bounded
window of readings once per THEFT_SCAN_S whatever the number of workers."""
from sqlmodel import Field, SQLModel

from .base import big


class TheftScan(SQLModel, table=True):
    __tablename__ = "theft_scan"
    property_id: int = Field(foreign_key="property.id", primary_key=True, sa_column_kwargs={"autoincrement": False})
    checked: int = big()
