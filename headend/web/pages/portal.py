"""The tenant portal: one's own accounts, balances and recent movements."""
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...api.deps import SessionDep, require_web
from ...core import permissions as P
from ...core.paging import Paging
from ...services import accounts
from ...services.actor import Actor
from ..render import page

router = APIRouter(prefix="/portal", include_in_schema=False)
PORTAL_ACCOUNTS = 20         # a tenant's accounts on one page (a tenant has one or a few)


@router.get("", response_class=HTMLResponse)
def portal(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PORTAL)]):
    mine = []
    for a in accounts.list_accounts(session, actor, paging=Paging(limit=PORTAL_ACCOUNTS)).items:
        _a, entries, _names, _sum = accounts.ledger_page(session, actor, a.id, limit=10)
        mine.append({"account": a, "entries": entries, "units": accounts.units_of(session, a.id)})
    return page(request, "tenant/portal.html", {"accounts": mine})
