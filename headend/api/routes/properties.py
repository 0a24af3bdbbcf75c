"""The property tree: organisations, properties, buildings, units."""
from typing import Annotated, Optional

from fastapi import APIRouter, Query

from ...core import permissions as P
from ...models import (BuildingCreate, BuildingPublic, OrganisationCreate, OrganisationPublic, PropertyCreate,
                       PropertyPublic, UnitCreate, UnitPublic)
from ...models.base import MAX_ID
from ...services import properties as svc
from ...services.actor import Actor
from ..deps import Id, SessionDep, require

router = APIRouter(prefix="/api", tags=["properties"])
OptId = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]


@router.get("/organisations", response_model=list[OrganisationPublic])
def list_organisations(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return svc.list_organisations(session, actor)


@router.post("/organisations", response_model=OrganisationPublic, status_code=201)
def create_organisation(body: OrganisationCreate, session: SessionDep,
                        actor: Annotated[Actor, require(P.ORGANISATIONS_WRITE)]):
    o = svc.create_organisation(session, actor, body.name)
    session.commit()
    return o


@router.get("/properties", response_model=list[PropertyPublic])
def list_properties(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return svc.list_properties(session, actor)


@router.post("/properties", response_model=PropertyPublic, status_code=201)
def create_property(body: PropertyCreate, session: SessionDep, actor: Annotated[Actor, require(P.ORGANISATIONS_WRITE)]):
    p = svc.create_property(session, actor, body.name, body.tz_offset_s, body.organisation_id)
    session.commit()
    return p


@router.get("/properties/{property_id}", response_model=PropertyPublic)
def get_property(property_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    return svc.get_property(session, actor, property_id)


@router.get("/buildings", response_model=list[BuildingPublic])
def list_buildings(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)], property_id: OptId = None):
    return svc.list_buildings(session, actor, property_id)


@router.post("/buildings", response_model=BuildingPublic, status_code=201)
def create_building(body: BuildingCreate, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTIES_WRITE)]):
    b = svc.create_building(session, actor, body.property_id, body.name, body.floors)
    session.commit()
    return b


@router.get("/units", response_model=list[UnitPublic])
def list_units(session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)], property_id: OptId = None,
               building_id: OptId = None):
    return svc.list_units(session, actor, property_id, building_id)


@router.post("/units", response_model=UnitPublic, status_code=201)
def create_unit(body: UnitCreate, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTIES_WRITE)]):
    u = svc.create_unit(session, actor, body.building_id, body.name, body.floor, body.floor_area_dm2)
    session.commit()
    return u
