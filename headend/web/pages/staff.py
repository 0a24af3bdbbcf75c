"""The staff dashboard: meters at a glance (live). The sales desk is web/pages/desk.py."""
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ...api.deps import PagingDep, SessionDep, require_web
from ...core import permissions as P
from ...services import meters, properties
from ...services.actor import Actor
from ..render import page
from . import alerts as alert_pages

router = APIRouter(prefix="/staff", include_in_schema=False)


State = Annotated[Literal[("",) + meters.STATES], Query(description="empty: every meter")]
DESK_ACCOUNTS = 50          # accounts offered in the desk's list (search for the others)


def _meters(request, session, actor, paging, state):
    """One page of the meter table, searched and filtered in the database."""
    st = request.app.state
    found = meters.meter_rows(session, actor, st.settings.offline_after_s, paging=paging,
                              state=state or None)
    return {"page": found, "params": {"q": paging.q, "state": state or "", "limit": paging.limit}}


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
         paging: PagingDep, state: State = ""):
    ctx = _meters(request, session, actor, paging, state)
    ctx.update(properties=properties.list_properties(session, actor), inbox=alert_pages.inbox(request, session, actor))
    return page(request, "staff/home.html", ctx)


@router.get("/meters", response_class=HTMLResponse)
def meters_partial(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
                   paging: PagingDep, state: State = ""):
    """The meter table alone (same page and filters): what the dashboard's htmx refresh swaps in."""
    return page(request, "partials/meters.html", _meters(request, session, actor, paging, state))
