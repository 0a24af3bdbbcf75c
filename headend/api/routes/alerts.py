"""Alerts: the staff inbox, acknowledging, deliveries; a property's alert
rules; webhooks."""
from typing import Annotated, Optional

from fastapi import APIRouter, Path, Query

from ...core import permissions as P
from ...models import AlertPublic
from ...models.alert import (KIND_PATTERN, AlertRulePublic, AlertRuleUpdate, NotificationPublic, WebhookCreate,
                             WebhookCreated, WebhookPublic)
from ...models.base import MAX_ID
from ...services import alert_rules, alerts, webhooks
from ...services.actor import Actor
from ..deps import Id, Limit, SessionDep, require

router = APIRouter(tags=["alerts"])

Kind = Annotated[str, Path(max_length=32, pattern=KIND_PATTERN)]


@router.get("/api/alerts", response_model=list[AlertPublic])
def list_alerts(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)], limit: Limit = 100,
                property_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None,
                unacknowledged: bool = False,
                before_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None):
    """The inbox, newest first: every alert of your properties."""
    return alerts.list_alerts(session, actor, property_id, unacknowledged, limit, before_id)


@router.post("/api/alerts/{alert_id}/ack", response_model=AlertPublic)
def acknowledge(alert_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.ALERTS_ACK)]):
    a = alerts.acknowledge(session, actor, alert_id)
    session.commit()
    return a


@router.get("/api/alerts/{alert_id}/deliveries", response_model=list[NotificationPublic])
def deliveries(alert_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """Every notification of the alert (channel, recipient, state) with each attempt."""
    out = []
    for n, tries in alerts.deliveries(session, actor, alert_id):
        d = n.model_dump()
        d["tries"] = [t.model_dump() for t in tries]
        out.append(NotificationPublic(**d))
    return out


@router.get("/api/properties/{property_id}/alert-rules", response_model=list[AlertRulePublic])
def list_rules(property_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """The property's rule for every kind of alert (is_default: not changed yet)."""
    return [alert_rules.rule_public(r) for r in alert_rules.list_rules(session, actor, property_id)]


@router.put("/api/properties/{property_id}/alert-rules/{kind}", response_model=AlertRulePublic)
def update_rule(property_id: Id, kind: Kind, body: AlertRuleUpdate, session: SessionDep,
                actor: Annotated[Actor, require(P.ALERTS_CONFIGURE)]):
    r = alert_rules.update_rule(session, actor, property_id, kind, body.model_dump(exclude_unset=True))
    session.commit()
    return alert_rules.rule_public(r)


@router.get("/api/webhooks", response_model=list[WebhookPublic])
def list_webhooks(session: SessionDep, actor: Annotated[Actor, require(P.ALERTS_CONFIGURE)],
                  property_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None):
    return [webhooks.public(h) for h in webhooks.list_webhooks(session, actor, property_id)]


@router.post("/api/webhooks", response_model=WebhookCreated, status_code=201)
def create_webhook(body: WebhookCreate, session: SessionDep, actor: Annotated[Actor, require(P.ALERTS_CONFIGURE)]):
    """A signed webhook: each alert of the kinds given (all when empty) is
    POSTed as JSON with X-Wattkeeper-Signature: sha256=HMAC(secret, body).
    The secret is shown only in this answer."""
    h = webhooks.create_webhook(session, actor, body.property_id, body.url, body.kinds, body.description)
    session.commit()
    return WebhookCreated(**webhooks.public(h), secret_hex=h.secret_hex)


@router.delete("/api/webhooks/{webhook_id}", response_model=WebhookPublic)
def delete_webhook(webhook_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.ALERTS_CONFIGURE)]):
    h = webhooks.delete_webhook(session, actor, webhook_id)
    session.commit()
    return webhooks.public(h)
