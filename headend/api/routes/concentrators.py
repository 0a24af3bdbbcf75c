"""Concentrators: provisioning, bus-scan imports, key rotation, relay policy."""
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from ...core import permissions as P
from ...models import ConcentratorCreate, ConcentratorCreated, ConcentratorPublic
from ...models.base import Body
from ...services import commands, devices
from ...services.actor import Actor
from ..deps import Dev, OptId, PagingDep, SessionDep, paged, require
from .common import CommandResult, wake_outbox

router = APIRouter(prefix="/api/concentrators", tags=["concentrators"])


class RekeyIn(Body):
    force: bool = Field(default=False, description="replace a rekey that is still pending")


class PolicyIn(Body):
    m: Optional[int] = Field(default=None, ge=0, le=255, description="meter index; absent: every meter")
    policy: dict[str, Any] = Field(
        max_length=16, description="the settings of docs/relay-policy.md, checked by the board's own "
        "schema (concentrator.schema.check_policy); a setting that is null or left out gets its default",
        examples=[{"friendly": [["22:00", "07:00"]], "emergency_mu": 50000}])


class RekeyResult(CommandResult):
    nonce: str


class ImportedMeter(BaseModel):
    id: str
    meter_pk: int
    index: int
    addr: Any
    proto: str
    model: str
    account_id: Optional[int]


class SkippedMeter(BaseModel):
    id: str
    addr: Any
    reason: str
    index: int


class ImportResult(BaseModel):
    concentrator: str
    created: list[ImportedMeter]
    skipped: list[SkippedMeter]
    board_meters: list[dict[str, Any]]


@router.post("", response_model=ConcentratorCreated, status_code=201)
def create_concentrator(body: ConcentratorCreate, session: SessionDep,
                        actor: Annotated[Actor, require(P.DEVICES_WRITE)]):
    """Provision a board. The key (generated when omitted) is shown only here."""
    c = devices.create_concentrator(session, actor, body.property_id, body.dev, body.key_hex)
    session.commit()
    return devices.concentrator_public(c, with_key=True)


@router.get("", response_model=list[ConcentratorPublic])
def list_concentrators(request: Request, response: Response, session: SessionDep,
                       actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep, property_id: OptId = None):
    """One page; `q` searches the device id."""
    page = devices.list_concentrators(session, actor, property_id, paging=paging)
    page.items = [devices.concentrator_public(c) for c in page.items]
    return paged(request, response, page)


@router.post("/{dev}/meters/import", response_model=ImportResult)
async def import_meters(dev: Dev, request: Request, session: SessionDep,
                        actor: Annotated[Actor, require(P.DEVICES_WRITE)], accounts: bool = False):
    """Create the meters a bus scan found (the console's `scan()` output: one JSON object per
    line, `{"addr": 1, "proto": "modbus", "model": "prepaid-int"}` or
    `{"addr": "000000001234", "proto": "dlt645", "model": "dlt645-2007"}`, optional `"id"`;
    a JSON array of them works too). Each new meter gets the next free index of the
    concentrator; meters without an id are named `<dev>-<addr>`. A meter whose id exists on
    this concentrator is skipped, so importing the same scan twice changes nothing; an id taken
    on another concentrator -> 409 and nothing is created. All-or-nothing: any bad line -> 422
    naming it. `?accounts=true` opens one account per new meter. Returns the created/skipped
    meters and `board_meters`, the entries for the board's /config.json `meters` list."""
    raw = await request.body()
    if len(raw) > 256 * 1024:
        from ...services.errors import Invalid
        raise Invalid("import too large (at most 256 KiB)")
    result = devices.import_scan(session, actor, dev, raw.decode("utf-8", "replace"), open_accounts=accounts)
    session.commit()
    return result


@router.post("/{dev}/rekey", response_model=RekeyResult, status_code=202)
def rekey(dev: Dev, body: RekeyIn, request: Request, session: SessionDep,
          actor: Annotated[Actor, require(P.KEYS_ROTATE)]):
    """Rotate the device key without sending it: a `cmd` {op: "rekey", nonce}
    (signed with the current key); both sides derive
    HMAC-SHA256(old key, "wk-rekey:" + nonce bytes). Downlinks use the new key
    from now on; uplinks are accepted under either key until the first valid
    one under the new key, which completes the switch (event 107)."""
    r = commands.rekey(session, actor, dev, force=body.force)
    session.commit()
    wake_outbox(request)
    return r


@router.post("/{dev}/policy", response_model=CommandResult, status_code=202)
def set_policy(dev: Dev, body: PolicyIn, request: Request, session: SessionDep,
               actor: Annotated[Actor, require(P.POLICY_WRITE)]):
    """Change the relay policy (docs/relay-policy.md) of meter index `m`, or
    of every meter of the board when `m` is absent: a `cmd` {op: "policy"}."""
    r = commands.set_policy(session, actor, dev, {k: v for k, v in body.policy.items() if v is not None}, m=body.m)
    session.commit()
    wake_outbox(request)
    return r
