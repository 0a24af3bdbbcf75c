"""Tariffs as a manager edits them: a form (flat, tiered 阶梯, time-of-use
尖峰平谷 with up to two seasons), versions with effective dates, a month's
cost preview for a consumption profile, and the resale limit (转供电) flag
before saving; and the property's settings (vacant-unit rule, resale limit,
receipt prefix)."""
import time
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from concentrator import tariff as T

from ...api.deps import SessionDep, require_web
from ...api.routes.common import wake_outbox
from ...core import permissions as P
from ...core.money import AmountError, local_date, parse_amount
from ...models.property_settings import VACANT_RULES
from ...services import property_settings, pushes, tariff_forms, tariffs
from ...services.actor import Actor
from ...services.errors import DomainError, Invalid, NotFound
from ..render import page
from .common import attempt, chosen_property, form_int

router = APIRouter(prefix="/staff", include_in_schema=False)
OptId = Annotated[Optional[int], Query(ge=1, le=2 ** 31 - 1)]
TIER_ROWS, WORK_ROWS, REST_ROWS, SEASONS = 3, 8, 4, 2
DEFAULTS = {"kind": "flat", "price": "0.6000", "s1_from": "01-01", "s1_to": "12-31", "profile": "home",
            "monthly_kwh": "300", "property_default": "1",
            "price_sharp": "1.2000", "price_peak": "0.9000", "price_flat": "0.6000", "price_valley": "0.3000"}
for _k, (_t, _b) in enumerate([("00:00", "valley"), ("08:00", "flat"), ("10:00", "peak"), ("19:00", "sharp"),
                               ("21:00", "flat"), ("23:00", "valley")], 1):
    DEFAULTS["s1_work_time_%d" % _k], DEFAULTS["s1_work_band_%d" % _k] = _t, _b
for _k, (_t, _b) in enumerate([("00:00", "valley"), ("08:00", "flat")], 1):
    DEFAULTS["s1_rest_time_%d" % _k], DEFAULTS["s1_rest_band_%d" % _k] = _t, _b
MAX_FIELD = 100


def _fields(form):
    """The posted form as plain strings (bounded)."""
    return {k: str(v)[:MAX_FIELD] for k, v in form.items() if isinstance(v, str)}


def _rows(f, prefix, n):
    return [(f.get("%s_time_%d" % (prefix, k), ""), f.get("%s_band_%d" % (prefix, k), "")) for k in range(1, n + 1)]


def form_dict(f):
    """What the form says, as services.tariff_forms.spec_from_form wants it."""
    seasons = []
    for s in range(1, SEASONS + 1):
        work = _rows(f, "s%d_work" % s, WORK_ROWS)
        if s > 1 and not any(a or b for a, b in work):
            continue
        seasons.append({"from": f.get("s%d_from" % s, ""), "to": f.get("s%d_to" % s, ""), "workday": work,
                        "weekend": _rows(f, "s%d_rest" % s, REST_ROWS)})
    return {"kind": f.get("kind", ""), "name": f.get("label", ""), "price": f.get("price", ""),
            "prices": {b: f.get("price_" + b, "") for b in T.BANDS},
            "tiers": [{"from_kwh": f.get("tier_from_%d" % k, ""), "add": f.get("tier_add_%d" % k, "")}
                      for k in range(1, TIER_ROWS + 1)],
            "seasons": seasons}


def _context(session, actor, prop, f):
    rows = tariffs.list_tariffs(session, actor, prop.id)
    by_name = {}
    for r in rows:
        by_name.setdefault(r.name, []).append(r)
    now = int(time.time())
    listing = []
    for name, versions in sorted(by_name.items()):
        view = tariffs.versions_view(session, actor, versions[0].id, now=now)
        listing.append({"name": name, "id": versions[0].id, "default": view["property_default"],
                        "versions": view["versions"]})
    st = property_settings.of(session, prop.id)
    return {"prop": prop, "listing": listing, "f": f, "bands": T.BANDS, "profiles": tariff_forms.PROFILES,
            "tier_rows": range(1, TIER_ROWS + 1), "work_rows": range(1, WORK_ROWS + 1),
            "rest_rows": range(1, REST_ROWS + 1), "seasons": range(1, SEASONS + 1),
            "limit": property_settings.max_price_mu_per_kwh(st), "settings": st,
            "month": local_date(now, prop.tz_offset_s)[:7],
            "can_write": actor.can(P.TARIFFS_WRITE, prop.id)}


def _preview(session, actor, prop, f):
    """-> (preview dict, spec) of what the form says, or raise Invalid."""
    spec = tariff_forms.spec_from_form(form_dict(f), prop.tz_offset_s)
    month = f.get("month") or local_date(int(time.time()), prop.tz_offset_s)[:7]
    if not (len(month) == 7 and month[4] == "-" and month[:4].isdigit() and month[5:].isdigit()
            and 1 <= int(month[5:]) <= 12):
        raise Invalid("month is YYYY-MM")
    r = tariff_forms.preview_for(session, actor, prop.id, None, spec, f.get("profile") or "home",
                                 f.get("monthly_kwh") or "300", month)
    return r, spec


@router.get("/tariffs", response_class=HTMLResponse)
def tariffs_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)],
                 property_id: OptId = None):
    _all, prop = chosen_property(session, actor, property_id)
    ctx = _context(session, actor, prop, dict(DEFAULTS))
    ctx["properties"] = _all
    return page(request, "staff/tariffs.html", ctx)


@router.post("/tariffs/preview", response_class=HTMLResponse)
async def preview(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.PROPERTY_READ)]):
    """The preview alone (what the form's Preview button swaps in with htmx)."""
    f = _fields(await request.form())
    try:
        _all, prop = chosen_property(session, actor, form_int(f.get("property_id")))
        r, _spec = _preview(session, actor, prop, f)
        return page(request, "partials/tariff_preview.html", {"preview": r, "preview_error": None})
    except (AmountError, DomainError) as e:
        return page(request, "partials/tariff_preview.html",
                    {"preview": None, "preview_error": getattr(e, "message", str(e))}, status_code=422)


@router.post("/tariffs", response_class=HTMLResponse)
async def save(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.TARIFFS_WRITE)]):
    """Save the form as a new tariff, or as the next version of the tariff
    of that name (from its effective date)."""
    f = _fields(await request.form())
    props, prop = chosen_property(session, actor, form_int(f.get("property_id")))
    ctx = _context(session, actor, prop, f)
    ctx["properties"] = props
    def save_():
        r, spec = _preview(session, actor, prop, f)
        ctx["preview"] = r
        name = (f.get("name") or "").strip()
        if not name:
            raise Invalid("give the tariff a name")
        existing = tariffs.tariff_rows(session, prop.id, name)
        effective = tariff_forms.effective_of(f["effective"], prop.tz_offset_s) if f.get("effective") else None
        confirm = f.get("confirm_over_limit") == "1"
        if existing:
            if effective is None:
                raise Invalid("a new version of %s needs its effective date" % name)
            fresh = {k: v for k, v in spec.items() if k not in ("version", "effective")}   # the next version
            row = tariffs.add_version(session, actor, existing[0].id, spec=fresh, effective=effective,
                                      confirm_over_limit=confirm)
        else:
            row = tariffs.create_tariff(session, actor, prop.id, name, spec=dict(spec, effective=effective or 0),
                                        property_default=f.get("property_default") == "1", confirm_over_limit=confirm)
        if tariffs.property_tariff_name(session, prop.id) == row.name:
            pushes.queue_tariff(session, prop.id)
    _done, ctx["error"], status = attempt(session, save_)
    if ctx["error"]:
        return page(request, "staff/tariffs.html", ctx, status_code=status)
    wake_outbox(request)
    return RedirectResponse("/staff/tariffs?property_id=%d" % prop.id, status_code=303)


# ------------------------------------------------------------------ property settings
@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.POLICY_WRITE)],
                  property_id: OptId = None):
    props, prop = chosen_property(session, actor, property_id)
    return page(request, "staff/settings.html", {"properties": props, "prop": prop, "rules": VACANT_RULES,
                                                 "s": property_settings.public(property_settings.of(session, prop.id))})


@router.post("/settings", response_class=HTMLResponse)
async def save_settings(request: Request, session: SessionDep, actor: Annotated[Actor, require_web(P.POLICY_WRITE)]):
    f = _fields(await request.form())
    props, prop = chosen_property(session, actor, form_int(f.get("property_id")))
    if prop.id != form_int(f.get("property_id")):
        raise NotFound("no property")
    grid, markup = f.get("grid_price", "").strip(), f.get("max_markup", "").strip()
    _row, error, status = attempt(session, lambda: property_settings.update(
        session, actor, prop.id, vacant_relay=f.get("vacant_relay") or None,
        grid_price_mu_per_kwh=tariff_forms.price(grid, "official price") if grid else None, clear_grid_price=not grid,
        max_markup_bp=parse_amount(markup, positive=False) // 100 if markup else None,
        receipt_prefix=_prefix(f.get("receipt_prefix", ""))))
    if error:
        return page(request, "staff/settings.html", {
            "properties": props, "prop": prop, "rules": VACANT_RULES, "error": error,
            "s": property_settings.public(property_settings.of(session, prop.id))}, status_code=status)
    wake_outbox(request)
    return RedirectResponse("/staff/settings?property_id=%d" % prop.id, status_code=303)


def _prefix(text):
    text = text.strip()
    if len(text) > 8 or not all(c.isascii() and (c.isalnum() or c == "-") for c in text):
        raise Invalid("a receipt prefix is up to 8 letters, digits or -")
    return text
