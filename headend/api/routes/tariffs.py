"""Tariffs and their versions (docs/tariffs.md)."""
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, model_validator

from ...core import permissions as P
from ...core.money import MAX_PRICE_MU_PER_KWH as MAX_PRICE
from ...models import TariffPublic
from ...models.base import MAX_ID, Body
from ...services import pushes, tariffs
from ...services.actor import Actor
from ..deps import Id, OptId, PagingDep, SessionDep, paged, require
from .common import wake_outbox

router = APIRouter(prefix="/api/tariffs", tags=["tariffs"])


class TariffIn(Body):
    """A tariff (or a new version of tariff `name` when it exists): a full
    version spec (docs/tariffs.md) or, for a flat tariff, price_mu_per_kwh."""
    property_id: int = Field(ge=1, le=MAX_ID)
    name: str = Field(min_length=1, max_length=100)
    price_mu_per_kwh: Optional[int] = Field(default=None, ge=0, le=MAX_PRICE)
    effective: int = Field(default=0, ge=0, le=2 ** 40, description="Unix seconds from which it applies")
    spec: Optional[dict[str, Any]] = Field(default=None, description="one version spec (docs/tariffs.md)")
    property_default: bool = Field(default=True, description="the property's boards get this tariff")

    @model_validator(mode="after")
    def _one_price(self):
        if (self.spec is None) == (self.price_mu_per_kwh is None):
            raise ValueError("give exactly one of spec (a tariff version, docs/tariffs.md) or price_mu_per_kwh")
        return self


class TariffVersionIn(Body):
    """A new version of an existing tariff, from `effective` on (normally a
    future local midnight)."""
    spec: Optional[dict[str, Any]] = None
    price_mu_per_kwh: Optional[int] = Field(default=None, ge=0, le=MAX_PRICE)
    effective: Optional[int] = Field(default=None, ge=0, le=2 ** 40, description="Unix seconds (or in spec)")

    @model_validator(mode="after")
    def _one_price(self):
        if (self.spec is None) == (self.price_mu_per_kwh is None):
            raise ValueError("give exactly one of spec or price_mu_per_kwh")
        if self.effective is None and not (self.spec and "effective" in self.spec):
            raise ValueError("give 'effective' (Unix seconds) for the new version")
        return self


class TariffChanged(TariffPublic):
    tariff_pushed: int


class VersionView(BaseModel):
    id: int
    version: int
    effective: int
    kind: str
    in_force: bool
    scheduled: bool
    summary: Any
    spec: dict[str, Any]


class VersionsView(BaseModel):
    name: str
    property_id: Optional[int]
    property_default: bool
    versions: list[VersionView]


def _commit_change(request, session, row):
    """Commit a tariff change; if it is the property's tariff, queue the
    versions for every board of the property."""
    queued = (pushes.queue_tariff(session, row.property_id)
              if tariffs.property_tariff_name(session, row.property_id) == row.name else 0)
    session.commit()
    wake_outbox(request)
    return TariffChanged(**row.model_dump(), tariff_pushed=queued)


@router.post("", response_model=TariffChanged, status_code=201)
def create_tariff(body: TariffIn, request: Request, session: SessionDep,
                  actor: Annotated[Actor, require(P.TARIFFS_WRITE)]):
    """A tariff version: a full spec (docs/tariffs.md; `version`, `effective`,
    `tz_offset_s` are filled in when absent) or a flat price_mu_per_kwh.
    When `name` exists at the property this adds its next version. The spec
    is checked with concentrator.tariff.validate (422 with its message). With
    property_default (default) the property's boards get this tariff."""
    t = tariffs.create_tariff(session, actor, body.property_id, body.name, body.price_mu_per_kwh,
                              effective=body.effective, spec=body.spec, property_default=body.property_default)
    return _commit_change(request, session, t)


@router.get("", response_model=list[TariffPublic])
def list_tariffs(request: Request, response: Response, session: SessionDep,
                 actor: Annotated[Actor, require(P.PROPERTY_READ)], paging: PagingDep, property_id: OptId = None):
    """Tariff version rows, one page at a time (a tariff = the rows with the same property
    and name); `q` searches the name."""
    return paged(request, response, tariffs.list_tariffs(session, actor, property_id, paging=paging))


@router.post("/{tariff_id}/versions", response_model=TariffChanged, status_code=201)
def add_version(tariff_id: Id, body: TariffVersionIn, request: Request, session: SessionDep,
                actor: Annotated[Actor, require(P.TARIFFS_WRITE)]):
    """Schedule a price change: a new version from `effective` (a future
    time; energy before it keeps the old prices)."""
    t = tariffs.add_version(session, actor, tariff_id, spec=body.spec, price_mu_per_kwh=body.price_mu_per_kwh,
                            effective=body.effective)
    return _commit_change(request, session, t)


@router.get("/{tariff_id}/versions", response_model=VersionsView)
def list_versions(tariff_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """Every version of the tariff (past, in force, scheduled), oldest first."""
    return tariffs.versions_view(session, actor, tariff_id)
