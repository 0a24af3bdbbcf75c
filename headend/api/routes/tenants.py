"""Tenants (the record: name, phone, ID number shown masked, contract
dates, deposit) and the desk's search."""
from typing import Annotated, Optional

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ...core import permissions as P
from ...models import TenantPublic
from ...models.base import MAX_ID
from ...models.tenant import TenantCreate, TenantUpdate
from ...services import tenants as svc
from ...services.actor import Actor
from ..deps import Id, SessionDep, require

router = APIRouter(prefix="/api", tags=["tenants"])
OptId = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]


class Ref(BaseModel):
    id: int
    name: str


class HitMeter(BaseModel):
    id: int
    meter_id: str
    relay_closed: Optional[bool]
    last_energy_wh: Optional[int]


class DeskHit(BaseModel):
    account_id: int
    property_id: int
    name: str
    status: str
    balance_mu: int
    balance: str
    low_balance: bool
    phone: str
    tenant_id: Optional[int]
    units: list[Ref]
    meters: list[HitMeter]


def _fields(body):
    return body.model_dump(exclude={"property_id", "name"}, exclude_unset=False)


@router.get("/tenants", response_model=list[TenantPublic])
def list_tenants(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)], property_id: OptId = None,
                 q: Annotated[Optional[str], Query(max_length=100)] = None):
    """Tenants whose name or phone contains `q`; ID numbers masked."""
    return [svc.public(session, t) for t in svc.list_tenants(session, actor, property_id, q)]


@router.post("/tenants", response_model=TenantPublic, status_code=201)
def create_tenant(body: TenantCreate, session: SessionDep, actor: Annotated[Actor, require(P.ACCOUNTS_WRITE)]):
    t = svc.create_tenant(session, actor, body.property_id, body.name, **_fields(body))
    session.commit()
    return svc.public(session, t)


@router.get("/tenants/{tenant_id}", response_model=TenantPublic)
def get_tenant(tenant_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return svc.public(session, svc.get_tenant(session, actor, tenant_id))


@router.patch("/tenants/{tenant_id}", response_model=TenantPublic)
def update_tenant(tenant_id: Id, body: TenantUpdate, session: SessionDep,
                  actor: Annotated[Actor, require(P.ACCOUNTS_WRITE)]):
    t = svc.update_tenant(session, actor, tenant_id, **body.model_dump(exclude_unset=True))
    session.commit()
    return svc.public(session, t)


@router.get("/desk/search", response_model=list[DeskHit])
def search(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)],
           q: Annotated[str, Query(min_length=1, max_length=100)], property_id: OptId = None):
    """The cashier's search: tenants' accounts by unit, tenant name, phone or meter id (contains, any case)."""
    return svc.search(session, actor, q, property_id)
