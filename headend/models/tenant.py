"""Tenants: the people (or companies) who rent units and hold accounts."""
from typing import Optional

from sqlmodel import Field, SQLModel

from .base import Body, big, id_field, now_s


class TenantBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=200)


class Tenant(TenantBase, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    name: str = Field(index=True, max_length=200)
    phone: str = Field(default="", index=True, max_length=40)
    id_number: str = Field(default="", max_length=40)     # shown masked in lists
    contract_start: Optional[int] = big(default=None)
    contract_end: Optional[int] = big(default=None)
    deposit_mu: int = big(default=0)
    created: int = big(default_factory=now_s)


class TenantCreate(TenantBase, Body):
    property_id: int = id_field()


class TenantPublic(TenantBase):
    id: int
    property_id: int
