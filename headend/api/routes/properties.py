"""The property tree: organisations, properties, buildings, units."""
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Response

from ...core import permissions as P
from ...models import (BuildingCreate, BuildingPublic, OrganisationCreate, OrganisationPublic, PropertyCreate,
                       PropertyPublic, UnitCreate, UnitPublic)
from ...models.property_settings import PropertySettingsPublic, PropertySettingsUpdate
from ...services import properties as svc
from ...services import property_settings
from ...services.actor import Actor
from ..deps import Id, SessionDep, require
from .common import wake_outbox
from ..deps import OptId, PagingDep, paged

router = APIRouter(prefix="/api", tags=["properties"])


@router.get("/organisations", response_model=list[OrganisationPublic])
def list_organisations(request: Request, response: Response, session: SessionDep,
                       actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep):
    return paged(request, response, svc.list_organisations(session, actor, paging=paging))


@router.post("/organisations", response_model=OrganisationPublic, status_code=201)
def create_organisation(body: OrganisationCreate, session: SessionDep,
                        actor: Annotated[Actor, require(P.ORGANISATIONS_WRITE)]):
    o = svc.create_organisation(session, actor, body.name)
    session.commit()
    return o


@router.get("/properties", response_model=list[PropertyPublic])
def list_properties(request: Request, response: Response, session: SessionDep,
                    actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep):
    return paged(request, response, svc.list_properties(session, actor, paging=paging))


@router.post("/properties", response_model=PropertyPublic, status_code=201)
def create_property(body: PropertyCreate, session: SessionDep, actor: Annotated[Actor, require(P.ORGANISATIONS_WRITE)]):
    p = svc.create_property(session, actor, body.name, body.tz_offset_s, body.organisation_id)
    session.commit()
    return p


@router.get("/properties/{property_id}", response_model=PropertyPublic)
def get_property(property_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return svc.get_property(session, actor, property_id)


@router.get("/buildings", response_model=list[BuildingPublic])
def list_buildings(request: Request, response: Response, session: SessionDep,
                   actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep, property_id: OptId = None):
    return paged(request, response, svc.list_buildings(session, actor, property_id, paging=paging))


@router.post("/buildings", response_model=BuildingPublic, status_code=201)
def create_building(body: BuildingCreate, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTIES_WRITE)]):
    b = svc.create_building(session, actor, body.property_id, body.name, body.floors)
    session.commit()
    return b


@router.get("/units", response_model=list[UnitPublic])
def list_units(request: Request, response: Response, session: SessionDep,
               actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep, property_id: OptId = None,
               building_id: OptId = None):
    return paged(request, response, svc.list_units(session, actor, property_id, building_id, paging=paging))


@router.post("/units", response_model=UnitPublic, status_code=201)
def create_unit(body: UnitCreate, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTIES_WRITE)]):
    u = svc.create_unit(session, actor, body.building_id, body.name, body.floor, body.floor_area_dm2)
    session.commit()
    return u


@router.get("/properties/{property_id}/settings", response_model=PropertySettingsPublic)
def get_settings(property_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """The vacant-unit relay rule, the resale limit of grid power (转供电) and the receipt prefix."""
    svc.get_property(session, actor, property_id)
    return property_settings.public(property_settings.of(session, property_id))


@router.put("/properties/{property_id}/settings", response_model=PropertySettingsPublic)
def update_settings(property_id: Id, body: PropertySettingsUpdate, request: Request, session: SessionDep,
                    actor: Annotated[Actor, require(P.POLICY_WRITE)]):
    """Change them. `vacant_relay`: open (vacant units have no power), closed
    (power on, charged to the vacancy account) or credit (the vacancy
    account's credit decides); a change is sent to every vacant meter's relay.
    `grid_price_mu_per_kwh` + `max_markup_bp`: tariffs above the official
    price plus the mark-up are flagged before they are saved."""
    row = property_settings.update(session, actor, property_id, **body.model_dump(exclude_unset=True))
    session.commit()
    wake_outbox(request)
    return property_settings.public(row)
