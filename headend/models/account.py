"""Accounts hold prepaid credit. A tenant's account occupies one or more
units over time (Occupancy); each property has a vacancy account that is
charged for meters in units nobody occupies, so that consumption is never
charged to nobody. The balance is a cache of the ledger's sum, updated in the
same statement as every ledger entry (services.ledger.post)."""
from typing import Optional

from sqlmodel import Field, SQLModel

from .base import Body, big, id_field, now_s
from .receipt import IDEMPOTENCY_PATTERN, METHOD_PATTERN

KIND_TENANT = "tenant"
KIND_VACANCY = "vacancy"
ACCOUNT_KINDS = (KIND_TENANT, KIND_VACANCY)


class AccountBase(SQLModel):
    low_balance_threshold_mu: int = Field(default=0, ge=0, le=10 ** 13)


class Account(AccountBase, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    tenant_id: Optional[int] = Field(default=None, foreign_key="tenant.id", index=True)
    kind: str = Field(default=KIND_TENANT, max_length=16)
    name: str = Field(max_length=200)                 # what pages show: the tenant's name
    balance_mu: int = big(default=0)                  # cache of sum(ledger)
    # sales less reversals: the `top` of credit pushes (services.ledger.post
    # moves it in the same statement as the balance)
    recharge_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    low_balance_threshold_mu: int = big(default=0)
    tariff_id: Optional[int] = Field(default=None, foreign_key="tariff.id")
    status: str = Field(default="open", max_length=16)   # open, closed
    opened: int = big(default_factory=now_s)
    closed: Optional[int] = big(default=None)


class AccountCreate(AccountBase, Body):
    property_id: int = id_field()
    tenant_id: Optional[int] = id_field(default=None)
    tenant: Optional[str] = Field(default=None, min_length=1, max_length=200,
                                  description="create a tenant of this name for the account")
    tariff_id: Optional[int] = id_field(default=None)


class AccountPublic(AccountBase):
    id: int
    property_id: int
    tenant_id: Optional[int]
    kind: str
    name: str
    balance_mu: int
    balance: str = ""
    tariff_id: Optional[int]
    status: str


class Occupancy(SQLModel, table=True):
    """Account `account_id` occupies unit `unit_id` from `start` until `end`
    (None: still there). A unit has at most one open occupancy."""
    id: Optional[int] = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    start: int = big(default_factory=now_s)
    end: Optional[int] = big(default=None)


class MoveIn(Body):
    unit_id: int = Field(ge=1)
    tariff_id: Optional[int] = Field(default=None, ge=1, description="the account's own tariff from now on "
                                                                      "(a manager's; absent: unchanged)")
    opening_credit: str = Field(default="0", max_length=24, description='sold at move-in, e.g. "100.00"')
    method: str = Field(default="cash", schema_extra={"pattern": METHOD_PATTERN})
    reference: str = Field(default="", max_length=100)
    idempotency_key: Optional[str] = Field(default=None, schema_extra={"pattern": IDEMPOTENCY_PATTERN})


class MoveOut(Body):
    unit_id: Optional[int] = Field(default=None, ge=1, description="absent: every unit of the account")
    settlement: str = Field(default="carry_over", schema_extra={"pattern": r"^(refund|carry_over)$"},
                            description="refund: pay the remaining credit back and close the account; "
                                        "carry_over: keep the balance on the open account")
    method: str = Field(default="cash", schema_extra={"pattern": METHOD_PATTERN})
    reference: str = Field(default="", max_length=100)
    reason: str = Field(default="", max_length=500)
    idempotency_key: Optional[str] = Field(default=None, schema_extra={"pattern": IDEMPOTENCY_PATTERN})


class AccountTariff(Body):
    tariff_id: Optional[int] = Field(ge=1, description="any version of the tariff; null: the property's")
