"""Boards and their firmware: each board's version and update state, and the
rollouts (start, pause, resume, stop) for admins and technicians."""
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from ...api.deps import Id, SessionDep, require_web
from ...core import permissions as P
from ...models import RolloutCreate
from ...services import devices, ota, properties
from ...services.actor import Actor
from ...services.errors import DomainError, Invalid
from ..render import page

router = APIRouter(prefix="/staff/firmware", include_in_schema=False)


def _context(session, actor, error=None):
    rollouts = [ota.view(session, actor, r.id) for r in ota.list_rollouts(session, actor)[:10]]
    return {"boards": devices.list_concentrators(session, actor), "rollouts": rollouts,
            "bundles": ota.list_bundles(session), "properties": properties.list_properties(session, actor),
            "error": error}


@router.get("", response_class=HTMLResponse)
def firmware_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    return page(request, "staff/firmware.html", _context(session, actor))


@router.get("/status", response_class=HTMLResponse)
def firmware_status(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    """The boards and rollouts alone: what the page's htmx refresh swaps in."""
    return page(request, "partials/firmware_status.html", _context(session, actor))


def _stages(text):
    out = []
    for part in text.replace("，", ",").split(","):
        part = part.strip()
        if not part:
            continue
        out.append(int(part) if part.isdigit() else part)
    if not out:
        raise Invalid("give the stages, e.g. 1, 10%, 100%")
    return out


@router.post("/rollouts", response_class=HTMLResponse)
def start_rollout(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.DEVICES_WRITE)],
                  bundle_id: Annotated[str, Form(max_length=16)], property_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)],
                  stages: Annotated[str, Form(max_length=100)] = "1, 10%, 100%",
                  health_s: Annotated[int, Form(ge=10, le=3600)] = 120):
    try:
        ota.start(session, actor, RolloutCreate(bundle_id=bundle_id, property_id=property_id,
                                                stages=_stages(stages), health_s=health_s))
        session.commit()
        mqtt = request.app.state.mqtt
        if mqtt is not None:
            mqtt.wake()
    except (DomainError, ValueError) as e:
        session.rollback()
        return page(request, "staff/firmware.html", _context(session, actor, getattr(e, "message", str(e))),
                    status_code=getattr(e, "status", 422))
    return page(request, "staff/firmware.html", _context(session, actor))


@router.post("/rollouts/{rollout_id}/{action}", response_class=HTMLResponse)
def change_rollout(rollout_id: Id, action: Literal["pause", "resume", "stop"], request: Request,
                   session: SessionDep, actor: Annotated[Actor, require_web(P.DEVICES_WRITE)]):
    try:
        ota.set_state(session, actor, rollout_id, action)
        session.commit()
    except DomainError as e:
        session.rollback()
        return page(request, "staff/firmware.html", _context(session, actor, e.message), status_code=e.status)
    return page(request, "staff/firmware.html", _context(session, actor))
