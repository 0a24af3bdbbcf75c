"""A tenant's own accounts (the tenant portal's API): nobody else's."""
from typing import Annotated

from fastapi import APIRouter, Request, Response

from ...core import permissions as P
from ...models import AccountPublic
from ...services import accounts as svc
from ...services.actor import Actor
from ..deps import Id, Limit, PagingDep, SessionDep, paged, require
from .accounts import LedgerPage, entry_public

router = APIRouter(prefix="/api/portal", tags=["portal"])


@router.get("/accounts", response_model=list[AccountPublic])
def my_accounts(request: Request, response: Response, session: SessionDep,
                actor: Annotated[Actor, require(P.PORTAL)], paging: PagingDep):
    page = svc.list_accounts(session, actor, paging=paging)
    page.items = [svc.public(a) for a in page.items]
    return paged(request, response, page)


@router.get("/accounts/{account_id}/ledger", response_model=LedgerPage)
def my_ledger(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)], limit: Limit = 100):
    """One of one's own accounts with its entries, newest first (404 for anyone else's)."""
    from ...core.money import format_money
    a, rows, _names, total = svc.ledger_page(session, actor, account_id, limit)
    return LedgerPage(account_id=a.id, name=a.name, balance_mu=a.balance_mu, balance=format_money(a.balance_mu),
                      ledger_sum_mu=total, entries=[entry_public(e) for e in rows])
