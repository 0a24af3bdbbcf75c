"""Apportionment (公摊): a property's pools, a month's preview, posting it
(once), the runs posted. How shares are computed: docs/apportionment.md."""
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import SQLModel

from ...core import permissions as P
from ...models.apportionment import MONTH_PATTERN, ApportionPost, PoolCreate, PoolPublic, PoolUpdate, RunPublic
from ...services import apportionment as svc
from ...services.actor import Actor
from ..deps import Id, OptId, PagingDep, SessionDep, paged, require

router = APIRouter(prefix="/api/apportionment", tags=["apportionment"])

Month = Annotated[str, Query(max_length=7, pattern=MONTH_PATTERN, description='local calendar month, "2026-11"')]


class PreviewPublic(SQLModel):
    property_id: int
    month: str
    start: int
    end: int
    complete: bool
    total_mu: int
    pools: list[dict[str, Any]]


@router.get("/pools", response_model=list[PoolPublic])
def list_pools(request: Request, response: Response, session: SessionDep,
               actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep, property_id: OptId = None):
    """The pools of your properties (common-area and loss pools)."""
    return paged(request, response, svc.list_pools(session, actor, property_id, paging=paging))


@router.post("/pools", response_model=PoolPublic, status_code=201)
def create_pool(body: PoolCreate, session: SessionDep, actor: Annotated[Actor, require(P.POOLS_WRITE)]):
    p = svc.create_pool(session, actor, body.property_id, body.name, body.kind, body.rule, body.building_id,
                        body.meter_ids, body.vacant_weight_pct, body.price, body.tolerance_pct, body.window_h)
    session.commit()
    return svc.pool_public(p)


@router.get("/pools/{pool_id}", response_model=PoolPublic)
def get_pool(pool_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return svc.pool_public(svc.get_pool(session, actor, pool_id))


@router.put("/pools/{pool_id}", response_model=PoolPublic)
def update_pool(pool_id: Id, body: PoolUpdate, session: SessionDep, actor: Annotated[Actor, require(P.POOLS_WRITE)]):
    p = svc.update_pool(session, actor, pool_id, body.name, body.rule, body.building_id, body.meter_ids,
                        body.vacant_weight_pct, body.price, body.tolerance_pct, body.window_h, body.active)
    session.commit()
    return svc.pool_public(p)


@router.get("/preview", response_model=PreviewPublic)
def preview(session: SessionDep, actor: Annotated[Actor, require(P.REPORTS_READ)],
            property_id: Annotated[int, Query(ge=1, le=2 ** 31 - 1)], month: Month):
    """The month's pools, their energy, price and amount, and every unit's share (nothing is posted)."""
    return svc.preview(session, actor, property_id, month)


@router.post("/runs", response_model=RunPublic, status_code=201)
def post_month(body: ApportionPost, session: SessionDep, actor: Annotated[Actor, require(P.MONEY_APPORTION)]):
    """Post a month that is over: one `apportionment` ledger entry per account and pool. A month is
    posted once: again, it answers already_posted and changes nothing."""
    run = svc.post(session, actor, body.property_id, body.month, body.idempotency_key)
    session.commit()
    return run


@router.get("/runs", response_model=list[RunPublic])
def list_runs(request: Request, response: Response, session: SessionDep,
              actor: Annotated[Actor, require(P.REPORTS_READ)], paging: PagingDep,
              property_id: Annotated[int, Query(ge=1, le=2 ** 31 - 1)]):
    page = svc.list_runs(session, actor, property_id, paging=paging)
    page.items = [svc.run_public(r) for r in page.items]
    return paged(request, response, page)


@router.get("/accounts/{account_id}", response_model=list[dict[str, Any]])
def account_shares(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)],
                   month: Optional[Month] = None):
    """An account's published breakdowns (what its tenant sees in the portal)."""
    from ...services import accounts
    a = accounts.get_account(session, actor, account_id)
    return [svc.breakdown(s) for s in svc.shares_of(session, a.id, month)]
