"""The audit log: one row per action that changes money, relays, tariffs,
policies, keys or people, and per login (good or bad). Written in the same
transaction as the action, so both happen or neither."""
import json

from sqlmodel import select

from ..models import AuditLog, now_s


def _jsonable(d):
    if d is None:
        return None
    return json.loads(json.dumps(d, default=str))


def record(session, actor, action, object_type="", object_id="", property_id=None, before=None, after=None,
           detail="", username=None, actor_kind=None, ip=None):
    """Add one audit row. `actor` is a services.actor.Actor or None (an
    anonymous request, e.g. a failed login: give `username`)."""
    row = AuditLog(
        ts=now_s(),
        user_id=actor.user_id if actor is not None else None,
        username=(username if username is not None else (actor.username if actor is not None else ""))[:64],
        actor_kind=actor_kind or ("system" if actor is not None and actor.kind == "system" else
                                  "user" if actor is not None else "anonymous"),
        ip=(ip if ip is not None else (actor.ip if actor is not None else ""))[:64],
        action=action[:64], object_type=object_type[:32], object_id=str(object_id)[:64],
        property_id=property_id, before=_jsonable(before), after=_jsonable(after), detail=detail[:1000])
    session.add(row)
    return row


def query(actor, action=None, user_id=None, property_id=None, since=None, until=None, object_type=None):
    """The audit rows an actor may read, newest first."""
    q = select(AuditLog)
    if actor.property_ids is not None:
        # a manager reads its properties' rows and its own actions
        q = q.where((AuditLog.property_id.in_(sorted(actor.property_ids))) | (AuditLog.user_id == actor.user_id))
    if action:
        q = q.where(AuditLog.action.startswith(action))
    if user_id is not None:
        q = q.where(AuditLog.user_id == user_id)
    if property_id is not None:
        q = q.where(AuditLog.property_id == property_id)
    if object_type:
        q = q.where(AuditLog.object_type == object_type)
    if since is not None:
        q = q.where(AuditLog.ts >= since)
    if until is not None:
        q = q.where(AuditLog.ts < until)
    return q.order_by(AuditLog.id.desc())
