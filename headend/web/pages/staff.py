"""The staff dashboard: meters at a glance (live), the sales desk."""
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from ...api.deps import OptId, SessionDep, require_web
from ...core import permissions as P
from ...core.money import AmountError, parse_amount
from ...services import accounts, meters, properties, sales
from ...services.actor import Actor
from ...services.errors import DomainError
from ..render import page

router = APIRouter(prefix="/staff", include_in_schema=False)


def _rows(request, session, actor):
    st = request.app.state
    return meters.meter_rows(session, actor, st.settings.offline_after_s, st.ingest.bus_errors)


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    return page(request, "staff/home.html", {"rows": _rows(request, session, actor),
                                             "properties": properties.list_properties(session, actor)})


@router.get("/meters", response_class=HTMLResponse)
def meters_partial(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    """The meter table alone: what the dashboard's htmx refresh swaps in."""
    return page(request, "partials/meters.html", {"rows": _rows(request, session, actor)})


@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_SELL)],
         account_id: OptId = None):
    return page(request, "staff/desk.html", {"accounts": accounts.list_accounts(session, actor),
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
    return page(request, "staff/desk.html", {"accounts": accounts.list_accounts(session, actor),
                                             "selected": account_id, "result": result, "error": error},
                status_code=status)
