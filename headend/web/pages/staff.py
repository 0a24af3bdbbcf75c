"""The staff dashboard: meters at a glance (live). The sales desk is web/pages/desk.py."""
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...api.deps import SessionDep, require_web
from ...core import permissions as P
from ...services import meters, properties
from ...services.actor import Actor
from ..render import page
from . import alerts as alert_pages

router = APIRouter(prefix="/staff", include_in_schema=False)


def _rows(request, session, actor):
    st = request.app.state
    return meters.meter_rows(session, actor, st.settings.offline_after_s, st.ingest.bus_errors)


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    return page(request, "staff/home.html", {"rows": _rows(request, session, actor),
                                             "properties": properties.list_properties(session, actor),
                                             "inbox": alert_pages.inbox(request, session, actor)})


@router.get("/meters", response_class=HTMLResponse)
def meters_partial(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    """The meter table alone: what the dashboard's htmx refresh swaps in."""
    return page(request, "partials/meters.html", {"rows": _rows(request, session, actor)})
