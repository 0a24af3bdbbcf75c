"""Tariffs and their versions (docs/tariffs.md)."""
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, model_validator

from ...core import permissions as P
from ...core.money import MAX_PRICE_MU_PER_KWH as MAX_PRICE
from ...models import TariffPublic
from ...models.base import MAX_ID
from ...services import pushes, tariff_forms, tariffs
from ...models.base import Body
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
    confirm_over_limit: bool = Field(default=False, description="save although it is above the resale limit "
                                                                "(转供电: official price + allowed mark-up)")

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
    confirm_over_limit: bool = False

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
                              effective=body.effective, spec=body.spec, property_default=body.property_default,
                              confirm_over_limit=body.confirm_over_limit)
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
                            effective=body.effective, confirm_over_limit=body.confirm_over_limit)
    return _commit_change(request, session, t)


@router.get("/{tariff_id}/versions", response_model=VersionsView)
def list_versions(tariff_id: Id, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """Every version of the tariff (past, in force, scheduled), oldest first."""
    return tariffs.versions_view(session, actor, tariff_id)


class PreviewIn(BaseModel):
    """A month's cost under a tariff: an existing one (tariff_id, every
    version) or a version spec not saved yet."""
    model_config = {"extra": "forbid", "strict": True}
    property_id: int = Field(ge=1, le=MAX_ID)
    tariff_id: Optional[int] = Field(default=None, ge=1, le=MAX_ID)
    spec: Optional[dict[str, Any]] = None
    profile: str = Field(default="home", pattern=r"^(home|shop|office|even|night)$",
                         description="when in the day the energy is used")
    monthly_kwh: str = Field(default="300", max_length=12, description='kWh in the month, e.g. "300"')
    month: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")

    @model_validator(mode="after")
    def _one(self):
        if (self.spec is None) == (self.tariff_id is None):
            raise ValueError("give exactly one of tariff_id or spec")
        return self


class BandCost(BaseModel):
    wh: int
    mu: int


class Preview(BaseModel):
    total_mu: int
    total: str
    wh: int
    avg_mu_per_kwh: int
    bands: dict[str, BandCost]
    over_resale_limit: Optional[dict[str, Any]] = None


@router.post("/preview", response_model=Preview)
def preview(body: PreviewIn, session: SessionDep, actor: Annotated[Actor, require(P.PROPERTY_READ)]):
    """What `monthly_kwh` in `month` costs, used as `profile` says (home,
    shop, office, even, night), hour by hour through the tariff module; and
    whether the tariff is above the resale limit of the property."""
    r = tariff_forms.preview_for(session, actor, body.property_id, body.tariff_id, body.spec, body.profile,
                                 body.monthly_kwh, body.month)
    return Preview(**r)
