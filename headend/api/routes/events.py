"""Events of the boards and of the head-end."""
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import select

from ...core import permissions as P
from ...models import Concentrator, Event, EventPublic
from ...services.actor import Actor
from ...core.paging import paginate, search
from ..deps import PagingDep, SessionDep, paged, require

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", response_model=list[EventPublic])
def list_events(request: Request, response: Response, session: SessionDep,
                actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep,
                code: Annotated[Optional[int], Query(ge=0, le=10 ** 6)] = None):
    """Newest first, one page at a time (not counted: the Link header has the next page);
    `code` filters (10 low balance, 105 billing mismatch, 106 command, 108 out of range...),
    `q` searches the text."""
    q = select(Event)
    if actor.property_ids is not None:
        q = q.where(Event.concentrator_id.in_(select(Concentrator.id).where(
            Concentrator.property_id.in_(sorted(actor.property_ids)))))
    if code is not None:
        q = q.where(Event.code == code)
    q = search(q, paging.q, Event.message).order_by(Event.id.desc())
    return paged(request, response, paginate(session, q, paging, count=False))
