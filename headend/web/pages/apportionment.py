"""Apportionment (公摊) on the dashboard: a property's pools (managers
add and edit them), a month's preview (every pool, every unit's share) and the
button that posts it (once). docs/apportionment.md says how it is computed."""
from typing import Annotated, Optional

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import select

from ...api.deps import SessionDep, require_web
from ...core import permissions as P
from ...core.money import format_price, now_s
from ...models import Building, Concentrator, Meter
from ...models.apportionment import KIND_PATTERN, MONTH_PATTERN, RULE_PATTERN, ApportionPool
from ...models.receipt import IDEMPOTENCY_PATTERN
from ...services import apportionment as svc
from ...services import months
from ...services.actor import Actor
from ..i18n import N_
from ..render import page
from .common import attempt, chosen_property
from .desk import new_key

router = APIRouter(prefix="/staff/apportionment", include_in_schema=False)
OptId = Annotated[Optional[int], Query(ge=1, le=2 ** 31 - 1)]
Month = Annotated[str, Form(pattern=MONTH_PATTERN)]
RULE_TEXT = {"area": N_("by floor area"), "consumption": N_("by consumption"), "equal": N_("equal shares")}
KIND_TEXT = {"common": N_("common area"), "loss": N_("loss (master − sub-meters)")}
MAX_CHOICES = 200


def _choices(session, property_id):
    """Meters of the property that sit in no unit (common-area and master meters)."""
    return session.exec(select(Meter).join(Concentrator, Concentrator.id == Meter.concentrator_id)
                        .where(Concentrator.property_id == property_id, Meter.unit_id.is_(None))
                        .order_by(Meter.meter_id).limit(MAX_CHOICES)).all()


def _render(request, session, actor, property_id=None, month=None, error=None, notice=None, status_code=200):
    props, prop = chosen_property(session, actor, property_id)
    month = month or months.previous(now_s(), prop.tz_offset_s)
    view = svc.preview(session, actor, prop.id, month)
    meters = {m.id: m.meter_id for m in session.exec(select(Meter).where(Meter.id.in_(
        sorted({i for r in view["pools"] for i in r["pool"]["meter_ids"]})))).all()} if view["pools"] else {}
    buildings = session.exec(select(Building).where(Building.property_id == prop.id).order_by(Building.name)).all()
    inactive = session.exec(select(ApportionPool).where(ApportionPool.property_id == prop.id,
                                                        ApportionPool.active.is_(False))
                            .order_by(ApportionPool.name).limit(MAX_CHOICES)).all()
    return page(request, "staff/apportionment.html", {
        "inactive": inactive,
        "properties": props, "prop": prop, "month": month, "view": view, "meter_names": meters,
        "buildings": {b.id: b.name for b in buildings}, "choices": _choices(session, prop.id),
        "rule_text": RULE_TEXT, "kind_text": KIND_TEXT, "key": new_key(), "error": error, "notice": notice,
        "can_configure": actor.can(P.POOLS_WRITE, prop.id), "can_post": actor.can(P.MONEY_APPORTION, prop.id),
        "runs": svc.list_runs(session, actor, prop.id)[:12]}, status_code=status_code)


@router.get("", response_class=HTMLResponse)
def apportionment_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.REPORTS_READ)],
                       property_id: OptId = None,
                       month: Annotated[Optional[str], Query(pattern=MONTH_PATTERN)] = None):
    return _render(request, session, actor, property_id, month)


@router.post("/pools", response_class=HTMLResponse)
def create_pool(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.POOLS_WRITE)],
                property_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)],
                name: Annotated[str, Form(min_length=1, max_length=100)],
                kind: Annotated[str, Form(pattern=KIND_PATTERN)] = "common",
                rule: Annotated[str, Form(pattern=RULE_PATTERN)] = "area",
                building_id: Annotated[str, Form(max_length=10)] = "",
                meter_ids: Annotated[list[int], Form(max_length=50)] = [],
                vacant_weight_pct: Annotated[int, Form(ge=0, le=100)] = 0,
                price: Annotated[str, Form(max_length=24)] = ""):
    bid = int(building_id) if building_id.isdigit() and len(building_id) < 10 else None
    _p, error, status = attempt(session, lambda: svc.create_pool(
        session, actor, property_id, name.strip(), kind, rule, bid, [m for m in meter_ids if 0 < m < 2 ** 31],
        vacant_weight_pct, price.strip() or None))
    if error:
        return _render(request, session, actor, property_id, error=error, status_code=status)
    return RedirectResponse("/staff/apportionment?property_id=%d" % property_id, status_code=303)


def _render_pool(request, session, pool, form=None, error=None, status_code=200):
    """The edit form of one pool; `form`: what was sent (shown again after a refusal)."""
    v = svc.pool_public(pool)
    if v["price_mu_per_kwh"] is not None:
        v["price"] = format_price(v["price_mu_per_kwh"])
    v.update(form or {})
    buildings = session.exec(select(Building).where(Building.property_id == pool.property_id)
                             .order_by(Building.name)).all()
    choices = list(_choices(session, pool.property_id))
    known = {m.id for m in choices}
    # a pool's meters stay listed (and ticked) even if they moved into a unit since
    choices += [m for m in session.exec(select(Meter).where(Meter.id.in_(v["meter_ids"]))).all() if m.id not in known]
    return page(request, "staff/pool_edit.html", {
        "pool": v, "buildings": {b.id: b.name for b in buildings}, "choices": choices,
        "rule_text": RULE_TEXT, "kind_text": KIND_TEXT, "error": error}, status_code=status_code)


PoolId = Annotated[int, Path(ge=1, le=2 ** 31 - 1)]


@router.get("/pools/{pool_id}", response_class=HTMLResponse)
def pool_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.POOLS_WRITE)],
              pool_id: PoolId):
    pool = svc.get_pool(session, actor, pool_id)
    actor.check(P.POOLS_WRITE, pool.property_id)
    return _render_pool(request, session, pool)


@router.post("/pools/{pool_id}", response_class=HTMLResponse)
def edit_pool(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.POOLS_WRITE)],
              pool_id: PoolId,
              name: Annotated[str, Form(min_length=1, max_length=100)],
              rule: Annotated[str, Form(pattern=RULE_PATTERN)] = "area",
              building_id: Annotated[str, Form(max_length=10)] = "",
              meter_ids: Annotated[list[int], Form(max_length=50)] = [],
              vacant_weight_pct: Annotated[int, Form(ge=0, le=100)] = 0,
              price: Annotated[str, Form(max_length=24)] = "",
              tolerance_pct: Annotated[int, Form(ge=1, le=100)] = 8,
              window_h: Annotated[int, Form(ge=1, le=24 * 7)] = 24,
              active: Annotated[str, Form(max_length=5)] = ""):
    pool = svc.get_pool(session, actor, pool_id)
    bid = int(building_id) if building_id.isdigit() and len(building_id) < 10 else None
    ids = [m for m in meter_ids if 0 < m < 2 ** 31]
    _p, error, status = attempt(session, lambda: svc.update_pool(
        session, actor, pool_id, name.strip(), rule, bid, ids, vacant_weight_pct, price.strip() or None,
        tolerance_pct, window_h, bool(active)))
    if error:
        form = {"name": name, "rule": rule, "building_id": bid, "meter_ids": ids, "vacant_weight_pct": vacant_weight_pct,
                "price": price, "tolerance_pct": tolerance_pct, "window_h": window_h, "active": bool(active)}
        return _render_pool(request, session, svc.get_pool(session, actor, pool_id), form, error, status)
    return RedirectResponse("/staff/apportionment?property_id=%d" % pool.property_id, status_code=303)


@router.post("/post", response_class=HTMLResponse)
def post_month(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.MONEY_APPORTION)],
               property_id: Annotated[int, Form(ge=1, le=2 ** 31 - 1)], month: Month,
               idempotency_key: Annotated[str, Form(pattern=IDEMPOTENCY_PATTERN)]):
    run, error, status = attempt(session, lambda: svc.post(session, actor, property_id, month, idempotency_key))
    if error:
        return _render(request, session, actor, property_id, month, error=error, status_code=status)
    notice = N_("already posted: nothing changed") if run["already_posted"] else N_("posted")
    return _render(request, session, actor, property_id, month, notice=notice)
