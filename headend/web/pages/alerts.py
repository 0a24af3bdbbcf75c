"""The staff inbox: alerts of one's properties, newest first, acknowledged
there (on the dashboard's home page and in full at /staff/alerts)."""
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select

from ...api.deps import Id, SessionDep, require_web
from ...core import permissions as P
from ...models import User
from ...services import alerts, messages
from ...services.actor import Actor
from ..render import language_of, page

router = APIRouter(prefix="/staff/alerts", include_in_schema=False)
HOME_LIMIT = 10


def inbox(request, session, actor, unacknowledged=True, limit=HOME_LIMIT):
    """What partials/alerts.html shows."""
    lang = language_of(request, actor.user)
    rows = alerts.list_alerts(session, actor, unacknowledged=unacknowledged, limit=limit)
    ids = sorted({a.acknowledged_by_user_id for a in rows if a.acknowledged_by_user_id})
    names = dict(session.exec(select(User.id, User.username).where(User.id.in_(ids))).all()) if ids else {}
    return {"alerts": [{"a": a, "text": messages.staff_line(a.kind, lang, a.values),
                        "label": messages.KIND_LABELS[a.kind],
                        "by": names.get(a.acknowledged_by_user_id)} for a in rows],
            "unacknowledged": unacknowledged, "open_count": alerts.count_unacknowledged(session, actor),
            "limit": limit}


@router.get("", response_class=HTMLResponse)
def alerts_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
                all: bool = False):
    return page(request, "staff/alerts.html", {"inbox": inbox(request, session, actor, not all, 200)})


@router.get("/list", response_class=HTMLResponse)
def alerts_partial(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
                   all: bool = False, full: bool = False):
    return page(request, "partials/alerts.html",
                {"inbox": inbox(request, session, actor, not all, 200 if full else HOME_LIMIT)})


@router.post("/{alert_id}/ack", response_class=HTMLResponse)
def acknowledge(alert_id: Id, request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.ALERTS_ACK)],
                full: bool = False):
    alerts.acknowledge(session, actor, alert_id)
    session.commit()
    return page(request, "partials/alerts.html", {"inbox": inbox(request, session, actor, True,
                                                                 200 if full else HOME_LIMIT)})
