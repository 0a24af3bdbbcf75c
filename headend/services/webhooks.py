"""A property's signed webhook endpoints (transport/webhook.py sends them).
The secret is made here and shown once, when the webhook is created."""
import secrets

from sqlmodel import select

from ..core import permissions as P
from ..models import Property, Webhook, now_s
from ..models import alert as K
from . import audit
from .actor import scoped
from .errors import Invalid, NotFound


def public(h):
    return {"id": h.id, "property_id": h.property_id, "url": h.url, "kinds": list(h.kinds),
            "description": h.description, "active": h.active, "created": h.created}


def create_webhook(session, actor, property_id, url, kinds=(), description=""):
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.ALERTS_CONFIGURE, property_id)
    bad = [k for k in kinds if k not in K.ALERT_KINDS]
    if bad:
        raise Invalid("unknown alert kinds %s (known: %s)" % (bad, ", ".join(K.ALERT_KINDS)))
    h = Webhook(property_id=property_id, url=url, secret_hex=secrets.token_hex(32), kinds=list(dict.fromkeys(kinds)),
                description=description, created=now_s(), created_by_user_id=actor.user_id)
    session.add(h)
    session.flush()
    audit.record(session, actor, "webhook.create", "webhook", h.id, property_id=property_id, after=public(h))
    return h


def list_webhooks(session, actor, property_id=None):
    q = scoped(select(Webhook), actor, Webhook.property_id).where(Webhook.active.is_(True))
    if property_id is not None:
        q = q.where(Webhook.property_id == property_id)
    return session.exec(q.order_by(Webhook.id)).all()


def delete_webhook(session, actor, webhook_id):
    """Disable it (kept: its deliveries name it); nothing more is sent to it."""
    h = session.get(Webhook, webhook_id)
    if h is None or not h.active or not actor.sees(h.property_id):
        raise NotFound("no webhook %s" % webhook_id)
    actor.check(P.ALERTS_CONFIGURE, h.property_id)
    h.active = False
    session.add(h)
    audit.record(session, actor, "webhook.delete", "webhook", h.id, property_id=h.property_id,
                 before=public(h) | {"active": True}, after={"active": False})
    return h
