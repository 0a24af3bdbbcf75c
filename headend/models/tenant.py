"""Tenants: the people (or companies) who rent units and hold accounts. The
ID number is kept whole for the manager's record and shown masked in every
list and answer (services.tenants.mask_id_number)."""
from typing import Optional

from sqlmodel import Field, SQLModel

from .base import Body, big, id_field, now_s
from .dayend import DAY_PATTERN


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


class TenantFields(Body):
    """What a person types about a tenant (dates as YYYY-MM-DD, the deposit as "2000.00")."""
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=200)
    id_number: str = Field(default="", max_length=40, schema_extra={"pattern": r"^[0-9A-Za-z-]{0,40}$"})
    contract_start: Optional[str] = Field(default=None, schema_extra={"pattern": DAY_PATTERN})
    contract_end: Optional[str] = Field(default=None, schema_extra={"pattern": DAY_PATTERN})
    deposit: str = Field(default="0", max_length=24, description='decimal string, e.g. "2000.00"')


class TenantCreate(TenantFields):
    property_id: int = id_field()
    name: str = Field(min_length=1, max_length=200)


class TenantUpdate(Body):
    name: Optional[str] = Field(default=None, min_length=1, max_length=200)
    phone: Optional[str] = Field(default=None, max_length=40)
    email: Optional[str] = Field(default=None, max_length=200)
    id_number: Optional[str] = Field(default=None, max_length=40, schema_extra={"pattern": r"^[0-9A-Za-z-]{0,40}$"})
    contract_start: Optional[str] = Field(default=None, schema_extra={"pattern": DAY_PATTERN})
    contract_end: Optional[str] = Field(default=None, schema_extra={"pattern": DAY_PATTERN})
    deposit: Optional[str] = Field(default=None, max_length=24)


class TenantPublic(TenantBase):
    id: int
    property_id: int
    id_number: str = ""             # masked
    contract_start: Optional[str] = None
    contract_end: Optional[str] = None
    deposit_mu: int = 0
    deposit: str = "0.00"
