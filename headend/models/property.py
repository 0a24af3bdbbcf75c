"""The property tree: organisation -> property -> building -> unit.

A group (organisation) can own several properties; a property has buildings,
a building has units (flats, shops, offices) with their floor area. Meters
sit in units; accounts occupy units (models.account.Occupancy).
"""
from typing import Optional

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, big, id_field, now_s

TZ_MIN, TZ_MAX = -14 * 3600, 14 * 3600


class OrganisationBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)


class Organisation(OrganisationBase, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    created: int = big(default_factory=now_s)


class OrganisationCreate(OrganisationBase, Body):
    pass


class OrganisationPublic(OrganisationBase):
    id: int


class PropertyBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    tz_offset_s: int = Field(default=28800, ge=TZ_MIN, le=TZ_MAX,
                             description="local time = UTC + this (China: 28800)")


class Property(PropertyBase, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(index=True, unique=True, max_length=100)
    # the tariff (a series of Tariff versions of this name) pushed to the boards
    tariff_name: Optional[str] = Field(default=None, max_length=100)
    created: int = big(default_factory=now_s)


class PropertyCreate(PropertyBase, Body):
    organisation_id: Optional[int] = id_field(default=None, description="default: the first organisation")


class PropertyPublic(PropertyBase):
    id: int
    organisation_id: int
    tariff_name: Optional[str] = None


class BuildingBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    floors: Optional[int] = Field(default=None, ge=1, le=300)


class Building(BuildingBase, table=True):
    __table_args__ = (UniqueConstraint("property_id", "name", name="uq_building_property_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    name: str = Field(max_length=100)
    created: int = big(default_factory=now_s)


class BuildingCreate(BuildingBase, Body):
    property_id: int = id_field()


class BuildingPublic(BuildingBase):
    id: int
    property_id: int


class UnitBase(SQLModel):
    name: str = Field(min_length=1, max_length=50, description="unit number, e.g. 1-0302")
    floor: Optional[int] = Field(default=None, ge=-10, le=300)
    floor_area_dm2: int = Field(default=0, ge=0, le=10 ** 9,
                                description="floor area in 0.01 m² (dm²): 8550 = 85.50 m²")


class Unit(UnitBase, table=True):
    __table_args__ = (UniqueConstraint("building_id", "name", name="uq_unit_building_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    building_id: int = Field(foreign_key="building.id", index=True)
    property_id: int = Field(foreign_key="property.id", index=True)   # the building's, for scoping
    name: str = Field(max_length=50)
    floor_area_dm2: int = big(default=0)
    created: int = big(default_factory=now_s)


class UnitCreate(UnitBase, Body):
    building_id: int = id_field()


class UnitPublic(UnitBase):
    id: int
    building_id: int
    property_id: int
