"""Meters: provisioning, the staff list, billing account, relay overrides."""
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from ...core import permissions as P
from ...core.money import AmountError, parse_kwh
from ...models import MeterAccountUpdate, MeterCreate, MeterPublic, MeterRow
from ...models.meter_history import MeterAssignmentPublic, MeterSwapIn, MeterSwapPublic
from ...services import commands, devices, lifecycle, load_curves, meters
from ...services.actor import Actor
from ...services.errors import Invalid
from ..deps import Id, SessionDep, require
from ...models.base import Body
from ..deps import Dev, OptId, PagingDep, paged
from .common import CommandResult, wake_outbox

router = APIRouter(prefix="/api/meters", tags=["meters"])


class OverrideIn(Body):
    state: Literal["open", "closed", "auto"]
    until: Optional[int] = Field(default=None, ge=0, le=2 ** 40, description="Unix seconds; required for open/closed")


@router.post("", response_model=MeterPublic, status_code=201)
def create_meter(body: MeterCreate, session: SessionDep, actor: Annotated[Actor, require(P.DEVICES_WRITE)]):
    m = devices.create_meter(session, actor, body.concentrator_id, body.meter_id, body.model, body.index,
                             body.account_id, body.opening_energy_wh, unit_id=body.unit_id)
    session.commit()
    return m


@router.get("", response_model=list[MeterRow])
def list_meters(request: Request, response: Response, session: SessionDep,
                actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep, property_id: OptId = None,
                concentrator: Annotated[Optional[Dev], Query()] = None,
                state: Annotated[Optional[Literal[meters.STATES]], Query()] = None):
    """The meters of the caller's properties, one page at a time (`limit`, `offset`;
    X-Total-Count and Link headers), with account, balance, last reading, relay state and
    last-seen time, and `bus_errors`: the board's per-meter RS485 error counters since its
    boot (timeouts, crc, wrong_address, exceptions, offline = times it went offline), null
    until a status message carried them. `q` searches meter, board, tenant and unit;
    `concentrator` (a device id) and `state` (low_balance, relay_open, offline) filter."""
    st = request.app.state
    page = meters.meter_rows(session, actor, st.settings.offline_after_s,
                             property_id=property_id, paging=paging, concentrator=concentrator, state=state)
    return paged(request, response, page)


@router.put("/{meter_pk}/account", response_model=MeterPublic)
def set_meter_account(meter_pk: Id, body: MeterAccountUpdate, request: Request, session: SessionDep,
                      actor: Annotated[Actor, require(P.ACCOUNTS_WRITE)]):
    from ...services import pushes
    m = devices.assign_meter(session, actor, meter_pk, body.account_id)
    pushes.queue_credit_for_meters(session, [m])
    session.commit()
    wake_outbox(request)
    return m


@router.post("/{meter_pk}/override", response_model=CommandResult, status_code=202)
def override_relay(meter_pk: Id, body: OverrideIn, request: Request, session: SessionDep,
                   actor: Annotated[Actor, require(P.RELAYS_OVERRIDE)]):
    """Staff override of a meter's relay: `closed` keeps the power on, `open`
    forces it off, until `until` (Unix seconds); `auto` ends the override.
    Sends a signed `cmd` {op: "relay"} (expires in 5 minutes) and records an
    event naming the user."""
    r = commands.override_relay(session, actor, meter_pk, body.state, body.until)
    session.commit()
    wake_outbox(request)
    return r


class MeterHistory(BaseModel):
    meter_pk: int
    assignments: list[MeterAssignmentPublic]
    swaps: list[MeterSwapPublic]


@router.post("/{meter_pk}/swap", response_model=MeterSwapPublic, status_code=201)
def swap_meter(meter_pk: Id, body: MeterSwapIn, request: Request, session: SessionDep,
               actor: Annotated[Actor, require(P.DEVICES_WRITE)]):
    """Replace the meter at this board position (the board's config gets the
    new meter too): the old meter's final reading (default: its last one),
    the new meter's opening reading; the account, tier counter and the
    month's billing continue. Readings as kWh decimal strings."""
    try:
        final = parse_kwh(body.final_kwh) if body.final_kwh is not None else None
        opening = parse_kwh(body.opening_kwh)
    except AmountError as e:
        raise Invalid(str(e))
    swap, residual = lifecycle.swap_meter(session, actor, meter_pk, body.new_meter_id, body.new_model, final, opening)
    session.commit()
    wake_outbox(request)
    return MeterSwapPublic(**swap.model_dump(exclude={"residual_mu"}), residual_mu=residual)


@router.get("/{meter_pk}/history", response_model=MeterHistory)
def meter_history(meter_pk: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """Which account the meter was billed to from which reading (move-ins,
    move-outs, reassignments), and its swaps."""
    assignments, swaps = lifecycle.history(session, actor, meter_pk)
    return MeterHistory(meter_pk=meter_pk, assignments=[a.model_dump() for a in assignments],
                        swaps=[s.model_dump() for s in swaps])


class CurvePoint(BaseModel):
    ts: int
    power_w: int = Field(description="the power the meter reported at the reading (W)")
    avg_w: Optional[int] = Field(description="the average power since the previous reading, from the register (W)")


class Curve(BaseModel):
    meter_id: str
    points: list[CurvePoint]
    truncated: bool = Field(description="the window held more readings than one answer carries: ask for less")


@router.get("/{meter_pk}/curve", response_model=Curve)
def load_curve(meter_pk: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)],
               start: Annotated[int, Query(ge=0, le=2 ** 32)], end: Annotated[int, Query(ge=0, le=2 ** 32)]):
    """The meter's load curve over [start, end) (Unix seconds, at most 35 days):
    per reading the reported power and the average power from the register."""
    c = load_curves.curve(session, actor, meter_pk, start, end)
    return Curve(meter_id=c["meter_id"], truncated=c["truncated"],
                 points=[CurvePoint(ts=t, power_w=w, avg_w=a) for t, w, a in c["points"]])
