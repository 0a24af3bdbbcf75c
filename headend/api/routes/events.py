"""Events of the boards and of the head-end."""
from typing import Annotated, Optional

from fastapi import APIRouter, Query
from sqlmodel import select

from ...core import permissions as P
from ...models import Concentrator, Event, EventPublic
from ...services.actor import Actor
from ..deps import Limit, SessionDep, require

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", response_model=list[EventPublic])
def list_events(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)], limit: Limit = 100,
                code: Annotated[Optional[int], Query(ge=0, le=10 ** 6)] = None):
    """Newest first; `code` filters (10 low balance, 105 billing mismatch, 106 command...)."""
    q = select(Event)
    if actor.property_ids is not None:
        q = q.where(Event.concentrator_id.in_(select(Concentrator.id).where(
            Concentrator.property_id.in_(sorted(actor.property_ids)))))
    if code is not None:
        q = q.where(Event.code == code)
    return session.exec(q.order_by(Event.id.desc()).limit(limit)).all()
