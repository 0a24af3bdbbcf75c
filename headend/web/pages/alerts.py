"""The staff inbox: alerts of one's properties, newest first, acknowledged
there (on the dashboard's home page and in full at /staff/alerts)."""
from typing import Annotated, Optional

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select

from ...api.deps import Id, SessionDep, require_web
from ...core import permissions as P
from ...models import User
from ...models.alert import KIND_PATTERN
from ...services import alert_rules, alerts, messages, properties
from ...services.actor import Actor
from ...services.errors import DomainError, Invalid
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


# ------------------------------------------------------------ rules (managers)
def _rules(request, session, actor, property_id=None, notice=None, error=None, status_code=200):
    props = properties.list_properties(session, actor)
    pid = property_id or (props[0].id if props else None)
    rows = [dict(alert_rules.rule_public(r), label=messages.KIND_LABELS[r.kind],
                 fields=alert_rules.RULE_FIELDS.get(r.kind, ()), tenant_kind=r.kind in alert_rules.TENANT_KINDS)
            for r in alert_rules.list_rules(session, actor, pid)] if pid else []
    return page(request, "staff/alert_rules.html", {"properties": props, "property_id": pid, "rules": rows,
                                                    "notice": notice, "error": error}, status_code=status_code)


@router.get("/rules", response_class=HTMLResponse)
def rules_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.ALERTS_CONFIGURE)],
               property_id: Optional[int] = None):
    if property_id is not None:
        properties.get_property(session, actor, property_id)
    return _rules(request, session, actor, property_id)


def _number(text, name):
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise Invalid("%s must be a whole number" % name)
    return int(text)


@router.post("/rules/{property_id}/{kind}", response_class=HTMLResponse)
def save_rule(property_id: Id, kind: Annotated[str, Path(max_length=32, pattern=KIND_PATTERN)], request: Request,
              session: SessionDep, actor: Annotated[Actor, require_web(P.ALERTS_CONFIGURE)],
              enabled: Annotated[str, Form(max_length=5)] = "", notify_tenant: Annotated[str, Form(max_length=5)] = "",
              staff_emails: Annotated[str, Form(max_length=1000)] = "", amount: Annotated[str, Form(max_length=24)] = "",
              days_left: Annotated[str, Form(max_length=9)] = "", minutes: Annotated[str, Form(max_length=9)] = "",
              per_hour: Annotated[str, Form(max_length=9)] = "", repeat_h: Annotated[str, Form(max_length=9)] = ""):
    """One kind's rule from the rules form (only the fields the kind uses)."""
    try:
        changes = {"enabled": bool(enabled),
                   "staff_emails": [e.strip() for e in staff_emails.split(",") if e.strip()]}
        if kind in alert_rules.TENANT_KINDS:
            changes["notify_tenant"] = bool(notify_tenant)
        used = alert_rules.RULE_FIELDS.get(kind, ())
        if "amount" in used:
            changes["amount"] = amount.strip() or None
        for name, value in (("days_left", days_left), ("minutes", minutes), ("per_hour", per_hour)):
            if name in used:
                changes[name] = _number(value, name.replace("_", " "))
        if "repeat_s" in used:
            hours = _number(repeat_h, "hours")
            changes["repeat_s"] = None if hours is None else hours * 3600
        alert_rules.update_rule(session, actor, property_id, kind, changes)
        session.commit()
    except DomainError as e:
        session.rollback()
        return _rules(request, session, actor, property_id, error=e.message, status_code=e.status)
    return _rules(request, session, actor, property_id, notice="rule saved")
