"""The audit log as staff read it: filters, and a CSV export."""
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ...api.deps import PagingDep, SessionDep, require_web
from ...api.routes.audit import audit_csv_response
from ...core import permissions as P
from ...core.money import day_bounds
from ...core.paging import paginate
from ...services import audit
from ...services.actor import Actor
from ...services.errors import Invalid
from ..render import page

router = APIRouter(prefix="/staff/audit", include_in_schema=False)


def _query(actor, action, username, day_from, day_to):
    since = until = None
    try:
        if day_from:
            since = day_bounds(day_from)[0]
        if day_to:
            until = day_bounds(day_to)[1]
    except (ValueError, TypeError):
        raise Invalid("dates are YYYY-MM-DD")
    q = audit.query(actor, action or None, since=since, until=until)
    if username:
        from ...models import AuditLog
        q = q.where(AuditLog.username == username)
    return q


@router.get("", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.AUDIT_READ)],
               paging: PagingDep, action: Annotated[str, Query(max_length=64)] = "", username: Annotated[str, Query(max_length=64)] = "",
               day_from: Annotated[str, Query(max_length=10)] = "", day_to: Annotated[str, Query(max_length=10)] = ""):
    """Newest first, one page at a time (not counted: the log grows for ever)."""
    found = paginate(session, _query(actor, action, username, day_from, day_to), paging, count=False)
    filters = {"action": action, "username": username, "day_from": day_from, "day_to": day_to}
    return page(request, "staff/audit.html", {"page": found, "filters": filters, "params": filters})


@router.get(".csv")
def audit_csv(session: SessionDep, actor: Annotated[Actor, require_web(P.AUDIT_READ)],
              action: Annotated[str, Query(max_length=64)] = "", username: Annotated[str, Query(max_length=64)] = "",
              day_from: Annotated[str, Query(max_length=10)] = "", day_to: Annotated[str, Query(max_length=10)] = ""):
    return audit_csv_response(session, _query(actor, action, username, day_from, day_to))
