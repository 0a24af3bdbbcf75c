"""Day end (日结) on the dashboard: a business day's figures per payment
method and cashier, its receipts, and closing it (managers)."""
from typing import Annotated, Optional

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ...api.deps import SessionDep, require_web
from ...core import permissions as P
from ...models.dayend import DAY_PATTERN
from ...models.receipt import METHOD_TEXT
from ...services import dayend, receipts
from ...services.actor import Actor
from ..render import page
from .common import attempt, chosen_property

router = APIRouter(prefix="/staff/dayend", include_in_schema=False)
OptId = Annotated[Optional[int], Query(ge=1, le=2 ** 31 - 1)]


def _render(request, session, actor, property_id, day, cashier_id, error=None, status_code=200):
    props, prop = chosen_property(session, actor, property_id)
    day = day or receipts.open_day(session, prop.id)
    rep = dayend.report(session, actor, prop.id, day, cashier_id)
    return page(request, "staff/dayend.html", {
        "properties": props, "prop": prop, "rep": rep, "days": dayend.days(session, actor, prop.id),
        "method_text": METHOD_TEXT, "can_close": actor.can(P.CASH_CLOSE, prop.id), "error": error},
        status_code=status_code)


@router.get("", response_class=HTMLResponse)
def report(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.CASH_REPORT)],
           property_id: OptId = None, day: Annotated[Optional[str], Query(pattern=DAY_PATTERN)] = None,
           cashier_id: OptId = None):
    return _render(request, session, actor, property_id, day, cashier_id)


@router.post("/close", response_class=HTMLResponse)
def close(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.CASH_CLOSE)],
          property_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)], day: Annotated[str, Form(pattern=DAY_PATTERN)]):
    _row, error, status = attempt(session, lambda: dayend.close(session, actor, property_id, day))
    if error:
        return _render(request, session, actor, property_id, day, None, error=error, status_code=status)
    return RedirectResponse("/staff/dayend?property_id=%d&day=%s" % (property_id, day), status_code=303)
