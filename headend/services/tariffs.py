"""Tariffs as the database holds them: a tariff is every version row with
the same (property, name); the property's boards get the versions of
Property.tariff_name; an account may use another tariff. Specs are checked
by concentrator.tariff (the very module the boards bill with)."""
import time

from sqlmodel import select

from concentrator import tariff as T

from ..core import permissions as P
from ..core.money import MAX_PRICE_MU_PER_KWH
from ..core.paging import listed
from ..models import Property, Tariff
from ..core.money import format_percent, format_price
from . import audit, billing
from .tariff_forms import over_limit
from .actor import scoped
from .errors import Invalid, NotFound


def _tz(session, property_id):
    p = session.get(Property, property_id) if property_id is not None else None
    return p.tz_offset_s if p is not None else 28800


def tariff_rows(session, property_id, name):
    return session.exec(select(Tariff).where(Tariff.property_id == property_id, Tariff.name == name)
                        .order_by(Tariff.effective, Tariff.version, Tariff.id)).all()


MAX_VERSION = 2 ** 31 - 1
MAX_EFFECTIVE = 2 ** 40
MAX_SPEC_INT = 10 ** 12        # Wh thresholds and anything else a version counts


def check_bounds(spec):
    """The numbers of a valid version spec stay where billing is exact and
    the database holds them: version and effective time, prices (and tier
    adders) up to MAX_PRICE_MU_PER_KWH, any other number up to 1e12.
    Raises ValueError naming the first one outside."""
    def walk(x, where):
        if isinstance(x, bool):
            return
        if isinstance(x, int) and abs(x) > MAX_SPEC_INT:
            raise ValueError("%s = %d is too large (at most %d)" % (where, x, MAX_SPEC_INT))
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, "%s.%s" % (where, k))
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, "%s[%d]" % (where, i))
    walk(spec, "spec")
    if not 0 <= spec["version"] <= MAX_VERSION:
        raise ValueError("version %d is out of range" % spec["version"])
    if not 0 <= spec["effective"] <= MAX_EFFECTIVE:
        raise ValueError("effective %d is out of range (Unix seconds)" % spec["effective"])
    prices = [("price", spec.get("price", 0))] + [("prices.%s" % b, p) for b, p in (spec.get("prices") or {}).items()]
    prices += [("tiers[%d].add" % i, t.get("add", 0)) for i, t in enumerate(spec.get("tiers") or [])]
    for where, p in prices:
        if isinstance(p, int) and p > MAX_PRICE_MU_PER_KWH:
            raise ValueError("%s = %d mu/kWh is too high (at most %d)" % (where, p, MAX_PRICE_MU_PER_KWH))


def create_tariff(session, actor, property_id, name, price_mu_per_kwh=None, version=None, effective=0, spec=None,
                  property_default=True, audit_action="tariff.create", confirm_over_limit=False):
    """Add one version to tariff `name` of the property (creating the tariff
    when the name is new). A full version spec (docs/tariffs.md; missing
    "version", "effective", "tz_offset_s" are filled in) or, for a flat
    tariff, price_mu_per_kwh. property_default: the property's boards get
    this tariff. Raises Invalid with the tariff module's message."""
    prop = session.get(Property, property_id)
    if prop is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.TARIFFS_WRITE, property_id)
    if price_mu_per_kwh is not None and price_mu_per_kwh < 0:
        raise Invalid("price must not be negative")
    rows = tariff_rows(session, property_id, name)
    if version is None:
        version = spec.get("version") if isinstance(spec, dict) and "version" in spec else None
    if version is None:
        version = max([r.version for r in rows] + [0]) + 1
    if isinstance(spec, dict) and "effective" in spec:
        effective = spec["effective"]
    tz = _tz(session, property_id)
    try:
        full = billing.normalize_spec(spec, version, effective, tz, price_mu_per_kwh)
        T.validate_versions(billing.versions_of(rows, tz) + [full])
        check_bounds(full)
    except ValueError as e:
        raise Invalid(str(e))
    over = over_limit(session, property_id, full)
    if over and not confirm_over_limit:
        raise Invalid("the dearest kWh of this tariff costs %s, above the resale limit %s (official price %s + %s): "
                      "check it, or confirm to save it anyway (confirm_over_limit)"
                      % (format_price(over["highest_mu_per_kwh"]), format_price(over["limit_mu_per_kwh"]),
                         format_price(over["grid_price_mu_per_kwh"]), format_percent(over["max_markup_bp"])))
    t = Tariff(property_id=property_id, name=name, version=full["version"], effective=full["effective"],
               kind=billing.kind_of(full), price_mu_per_kwh=full.get("price", 0), spec=full,
               created_by_user_id=actor.user_id)
    session.add(t)
    before_default = prop.tariff_name
    if property_default and prop.tariff_name != name:
        prop.tariff_name = name
        session.add(prop)
    session.flush()
    audit.record(session, actor, audit_action, "tariff", t.id, property_id=property_id,
                 before={"property_tariff": before_default} if before_default != prop.tariff_name else None,
                 after={"name": name, "version": t.version, "effective": t.effective,
                        "summary": T.price_summary(full), "property_tariff": prop.tariff_name,
                        "over_resale_limit": over})
    return t


def add_version(session, actor, tariff_id, spec=None, price_mu_per_kwh=None, effective=None, now=None,
                confirm_over_limit=False):
    """Schedule a price change: a new version of the tariff that row
    `tariff_id` belongs to, from `effective` (a future time)."""
    row = get_tariff(session, actor, tariff_id)
    eff = effective if effective is not None else (spec.get("effective") if isinstance(spec, dict) else None)
    if eff is None:
        raise Invalid("a new version needs its 'effective' time (Unix seconds)")
    now = int(now if now is not None else time.time())
    if isinstance(eff, int) and eff < now - 60:
        raise Invalid("effective %d is in the past (now %d): a version in force cannot change "
                      "retroactively; give a future time" % (eff, now))
    return create_tariff(session, actor, row.property_id, row.name, price_mu_per_kwh,
                         effective=eff, spec=spec, property_default=False, audit_action="tariff.version",
                         confirm_over_limit=confirm_over_limit)


def get_tariff(session, actor, tariff_id):
    row = session.get(Tariff, tariff_id)
    if row is None or not actor.sees(row.property_id):
        raise NotFound("no tariff %s" % tariff_id)
    return row


def list_tariffs(session, actor, property_id=None, paging=None):
    q = scoped(select(Tariff), actor, Tariff.property_id)
    if property_id is not None:
        q = q.where(Tariff.property_id == property_id)
    return listed(session, q.order_by(Tariff.id), paging, Tariff.name)


def property_tariff_name(session, property_id):
    p = session.get(Property, property_id) if property_id is not None else None
    if p is not None and p.tariff_name:
        return p.tariff_name
    row = session.exec(select(Tariff).where(Tariff.property_id == property_id)
                       .order_by(Tariff.created.desc(), Tariff.id.desc())).first()
    return row.name if row is not None else None


def property_versions(session, property_id):
    """The version specs of the property's tariff (what its boards get)."""
    name = property_tariff_name(session, property_id)
    if name is None:
        return []
    return billing.versions_of(tariff_rows(session, property_id, name), _tz(session, property_id))


def versions_for_account(session, account, property_id):
    """The versions an account's meters are billed with: its own tariff,
    else the property's."""
    if account is not None and account.tariff_id is not None:
        return versions_for_tariff(session, account.tariff_id)
    return property_versions(session, property_id)


def versions_for_tariff(session, tariff_id):
    row = session.get(Tariff, tariff_id)
    if row is None:
        return []
    return billing.versions_of(tariff_rows(session, row.property_id, row.name), _tz(session, row.property_id))


def tariff_of_account(session, account):
    """(name, versions) the meters of `account` are billed with: the
    account's own tariff, else the property's."""
    if account.tariff_id is not None:
        row = session.get(Tariff, account.tariff_id)
        return (row.name if row is not None else None), versions_for_tariff(session, account.tariff_id)
    return property_tariff_name(session, account.property_id), property_versions(session, account.property_id)


def versions_view(session, actor, tariff_id, now=None):
    row = get_tariff(session, actor, tariff_id)
    rows = tariff_rows(session, row.property_id, row.name)
    tz = _tz(session, row.property_id)
    specs = [(r, billing.row_spec(r, tz)) for r in rows]
    now = int(now if now is not None else time.time())
    cur = T.spec_at([sp for _, sp in specs], now) if specs else None
    return {"name": row.name, "property_id": row.property_id,
            "property_default": property_tariff_name(session, row.property_id) == row.name,
            "versions": [{"id": r.id, "version": sp["version"], "effective": sp["effective"], "kind": r.kind,
                          "in_force": sp is cur, "scheduled": sp["effective"] > now,
                          "summary": T.price_summary(sp), "spec": sp} for r, sp in specs]}
