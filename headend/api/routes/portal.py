"""A tenant's own accounts (the tenant portal's API): nobody else's."""
from typing import Annotated

from fastapi import APIRouter

from ...core import permissions as P
from ...models import AccountPublic
from ...services import accounts as svc
from ...services.actor import Actor
from ..deps import Id, Limit, SessionDep, require
from .accounts import LedgerPage
from .common import entry_public

router = APIRouter(prefix="/api/portal", tags=["portal"])


@router.get("/accounts", response_model=list[AccountPublic])
def my_accounts(session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)]):
    return [svc.public(a) for a in svc.list_accounts(session, actor)]


@router.get("/accounts/{account_id}/ledger", response_model=LedgerPage)
def my_ledger(account_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PORTAL)], limit: Limit = 100):
    """One of one's own accounts with its entries, newest first (404 for anyone else's)."""
    from ...core.money import format_money
    a, rows, _names, total = svc.ledger_page(session, actor, account_id, limit)
    return LedgerPage(account_id=a.id, name=a.name, balance_mu=a.balance_mu, balance=format_money(a.balance_mu),
                      ledger_sum_mu=total, entries=[entry_public(e) for e in rows])
