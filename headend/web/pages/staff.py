"""The staff dashboard: meters at a glance (live), the sales desk."""
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from ...api.deps import OptId, PagingDep, SessionDep, require_web
from ...core import permissions as P
from ...core.money import AmountError, parse_amount
from ...core.paging import Paging
from ...services import accounts, meters, sales
from ...services.actor import Actor
from ...services.errors import DomainError
from ..render import page

router = APIRouter(prefix="/staff", include_in_schema=False)


State = Annotated[Literal[("",) + meters.STATES], Query(description="empty: every meter")]
DESK_ACCOUNTS = 50          # accounts offered in the desk's list (search for the others)


def _meters(request, session, actor, paging, state):
    """One page of the meter table, searched and filtered in the database."""
    st = request.app.state
    found = meters.meter_rows(session, actor, st.settings.offline_after_s, st.ingest.bus_errors, paging=paging,
                              state=state or None)
    return {"page": found, "params": {"q": paging.q, "state": state or "", "limit": paging.limit}}


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
         paging: PagingDep, state: State = ""):
    return page(request, "staff/home.html", _meters(request, session, actor, paging, state))


@router.get("/meters", response_class=HTMLResponse)
def meters_partial(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
                   paging: PagingDep, state: State = ""):
    """The meter table alone (same page and filters): what the dashboard's htmx refresh swaps in."""
    return page(request, "partials/meters.html", _meters(request, session, actor, paging, state))


def _desk_accounts(session, actor, q="", selected=None):
    """The accounts the desk's list offers: those matching q (name or #number),
    at most DESK_ACCOUNTS, with the selected one always among them."""
    found = accounts.list_accounts(session, actor, paging=Paging(limit=DESK_ACCOUNTS, q=q)).items
    if selected is not None and all(a.id != selected for a in found):
        try:
            found = [accounts.get_account(session, actor, selected)] + found
        except DomainError:
            pass
    return found


@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_SELL)],
         account_id: OptId = None, q: Annotated[str, Query(max_length=100)] = ""):
    return page(request, "staff/desk.html", {"accounts": _desk_accounts(session, actor, q, account_id), "q": q,
                                             "selected": account_id, "result": None, "error": None})


@router.post("/desk/recharge", response_class=HTMLResponse)
def desk_recharge(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_SELL)],
                  account_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)],
                  amount: Annotated[str, Form(max_length=24)], note: Annotated[str, Form(max_length=500)] = ""):
    """Sell credit from the desk form; answers the result partial (htmx) or the page."""
    result, error, status = None, None, 200
    try:
        sale = sales.sell(session, actor, account_id, parse_amount(amount), note=note)
        session.commit()
        mqtt = request.app.state.mqtt
        if mqtt is not None:
            mqtt.wake()
        result = {"entry": sale.entry, "account": accounts.get_account(session, actor, account_id)}
    except (AmountError, DomainError) as e:
        session.rollback()
        error = getattr(e, "message", None) or str(e)
        status = getattr(e, "status", 422)
    if request.headers.get("hx-request"):
        return page(request, "partials/sale_result.html", {"result": result, "error": error},
                    status_code=status)
    return page(request, "staff/desk.html", {"accounts": _desk_accounts(session, actor, selected=account_id),
                                             "q": "", "selected": account_id, "result": result, "error": error},
                status_code=status)
