"""Firmware updates over the air: bundles and rollouts (admins and technicians)."""
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, File, Query, Request, UploadFile

from ...core import permissions as P
from ...models import FirmwareBundlePublic, RolloutCreate, RolloutPublic
from ...models.base import MAX_ID
from ...services import ota
from ...services.actor import Actor
from ...services.errors import Invalid
from ..deps import Id, SessionDep, require
from .common import wake_outbox

router = APIRouter(prefix="/api", tags=["firmware"])
MAX_BUNDLE = 1024 * 1024


@router.post("/firmware", response_model=FirmwareBundlePublic, status_code=201)
async def upload_bundle(session: SessionDep, actor: Annotated[Actor, require(P.DEVICES_WRITE)],
                        manifest: Annotated[UploadFile, File(description="manifest.json of `tools/ota.py build`")],
                        bundle: Annotated[UploadFile, File(description="bundle.bin: the files, concatenated")]):
    """Store a firmware bundle made by `python -m tools.ota build` (its manifest
    and its data); every file is checked against the manifest's SHA-256."""
    text = (await manifest.read(64 * 1024 + 1))
    data = await bundle.read(MAX_BUNDLE + 1)
    if len(text) > 64 * 1024 or len(data) > MAX_BUNDLE:
        raise Invalid("bundle too large (manifest at most 64 KiB, bundle at most 1 MiB)")
    b = ota.add_bundle(session, actor, text.decode("utf-8", "replace"), data)
    session.commit()
    return ota.bundle_public(b)


@router.get("/firmware", response_model=list[FirmwareBundlePublic])
def list_bundles(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return [ota.bundle_public(b) for b in ota.list_bundles(session)]


@router.post("/rollouts", response_model=RolloutPublic, status_code=201)
def start_rollout(body: RolloutCreate, request: Request, session: SessionDep,
                  actor: Annotated[Actor, require(P.DEVICES_WRITE)]):
    """Roll a bundle out to a property's boards: stage by stage (default one
    board, then 10 %, then all); a stage with more failed health checks than
    allowed stops the rollout before the next boards are offered."""
    r = ota.start(session, actor, body)
    session.commit()
    wake_outbox(request)
    return ota.view(session, actor, r.id)


@router.get("/rollouts", response_model=list[RolloutPublic])
def list_rollouts(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)],
                  property_id: Annotated[Optional[int], Query(ge=1, le=MAX_ID)] = None):
    return [ota.view(session, actor, r.id) for r in ota.list_rollouts(session, actor, property_id)]


@router.get("/rollouts/{rollout_id}", response_model=RolloutPublic)
def get_rollout(rollout_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """The rollout and each of its boards: version, state, next chunk, why it failed."""
    return ota.view(session, actor, rollout_id)


@router.post("/rollouts/{rollout_id}/{action}", response_model=RolloutPublic)
def change_rollout(rollout_id: Id, action: Literal["pause", "resume", "stop"], request: Request,
                   session: SessionDep, actor: Annotated[Actor, require(P.DEVICES_WRITE)]):
    ota.set_state(session, actor, rollout_id, action)
    session.commit()
    wake_outbox(request)
    return ota.view(session, actor, rollout_id)
