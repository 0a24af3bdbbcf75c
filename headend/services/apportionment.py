"""Apportionment (公摊): common-area and loss energy of a month shared among
the units of a building or property, posted as `apportionment` ledger
entries each linked to a published breakdown (models/apportionment.py).

How a month is computed (docs/apportionment.md has a worked example):

* the month is the property's local calendar month [start, end);
* energy per meter: month_energy() (register difference at the edges);
* a common pool's energy is Σ its meters; a loss pool's is
  master − Σ tenant meters (meters in the scope's units) − Σ the common
  pools' meters of the same scope, never below 0;
* its price: the pool's own price, else the property's tariff in force at
  the month's start, its flat band (concentrator.tariff.marginal_price: the
  base tier, no TOU band: common use has no band breakdown); the pool's
  amount is floor(energy_wh × price / 1000) mu;
* who shares it: every unit of the scope, in parts — each stretch of the
  month a tenant account occupied it (Occupancy), and each stretch it was
  vacant, at the pool's vacant weight (0 %: excluded), charged to the
  property's vacancy account (the owner of the empty unit);
* a part's weight: area rule floor area × seconds × weight %, equal rule
  seconds × weight %, consumption rule the unit's own energy in that
  stretch × weight %;
* the amount and the energy are split by those weights with the largest-
  remainder rule (services/shares.py): shares add up to the pool to the mu,
  the leftover mu going to the largest fractions, ties to the smallest unit id.

Posting is by a manager (money.apportion), audited, and happens once per
(account, pool, month): a second post of the same month changes nothing.
"""
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T

from ..core import permissions as P
from ..core.money import AmountError, format_kwh, format_money, parse_amount
from ..core.paging import listed
from ..models import Account, Building, Meter, Occupancy, Property, Reading, Unit, now_s
from ..models.account import KIND_TENANT
from ..models.apportionment import (KIND_COMMON, KIND_LOSS, MAX_POOL_METERS, POOL_KINDS, RULE_AREA,
                                    RULE_CONSUMPTION, RULE_EQUAL, RULES, ApportionPool, ApportionRun,
                                    ApportionShare)
from ..models.ledger import APPORTIONMENT
from . import audit, ledger, pushes, tariffs
from .accounts import vacancy_account
from .actor import scoped
from .errors import Conflict, Invalid, NotFound
from .months import bounds as month_bounds
from .shares import largest_remainder

DAY = 86400
FULL = 100          # an occupied part's weight, percent


# ------------------------------------------------------------ energy
def month_energy(session, meter_ids, start, end):
    """SEAM (issue 11a's rollups replace this body): energy (Wh) of each
    meter over [start, end) -> {meter pk: Wh}: its register at the last
    reading before `end` minus its register at the last reading before
    `start` (the first reading inside when there is none before); readings
    marked missing are skipped; a meter without readings inside has 0."""
    ids = sorted(set(meter_ids))
    out = {mid: 0 for mid in ids}
    if not ids or end <= start:
        return out
    present = Reading.flags.op("&")(protocol.FLAG_MISSING) == 0
    inside = {mid: (int(lo), int(hi)) for mid, lo, hi in session.exec(
        select(Reading.meter_id, func.min(Reading.energy_wh), func.max(Reading.energy_wh))
        .where(Reading.meter_id.in_(ids), Reading.ts >= start, Reading.ts < end, present)
        .group_by(Reading.meter_id)).all()}
    for mid, (lo, hi) in inside.items():
        before = session.exec(select(Reading.energy_wh).where(Reading.meter_id == mid, Reading.ts < start, present)
                              .order_by(Reading.ts.desc()).limit(1)).first()
        out[mid] = max(0, hi - (lo if before is None else int(before)))
    return out


# ------------------------------------------------------------ pools
def pool_public(p):
    return {"id": p.id, "property_id": p.property_id, "building_id": p.building_id, "name": p.name,
            "kind": p.kind, "rule": p.rule, "meter_ids": list(p.meter_ids), "vacant_weight_pct": p.vacant_weight_pct,
            "price_mu_per_kwh": p.price_mu_per_kwh, "tolerance_pct": p.tolerance_pct, "window_h": p.window_h,
            "active": p.active}


def _property(session, actor, property_id):
    prop = session.get(Property, property_id)
    if prop is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    return prop


def list_pools(session, actor, property_id=None, paging=None):
    actor.check(P.PROPERTY_READ)
    q = scoped(select(ApportionPool), actor, ApportionPool.property_id)
    if property_id is not None:
        q = q.where(ApportionPool.property_id == property_id)
    return listed(session, q.order_by(ApportionPool.property_id, ApportionPool.id), paging, ApportionPool.name)


def get_pool(session, actor, pool_id):
    p = session.get(ApportionPool, pool_id)
    if p is None or not actor.sees(p.property_id):
        raise NotFound("no pool %s" % pool_id)
    return p


def _price(text):
    if text in (None, ""):
        return None
    try:
        return parse_amount(text, decimals=4)
    except AmountError as e:
        raise Invalid("price: %s" % e)


def _check(session, property_id, kind, rule, building_id, meter_ids, vacant_weight_pct):
    if kind not in POOL_KINDS:
        raise Invalid("a pool is common or loss")
    if rule not in RULES:
        raise Invalid("the rule is area, consumption or equal")
    if not 0 <= vacant_weight_pct <= 100:
        raise Invalid("a vacant unit's weight is 0 to 100 %")
    if building_id is not None:
        b = session.get(Building, building_id)
        if b is None or b.property_id != property_id:
            raise Invalid("no building %s in this property" % building_id)
    ids = list(dict.fromkeys(meter_ids or []))
    if not ids:
        raise Invalid("a pool measures at least one meter (common-area meters, or the master meter of a loss pool)")
    if len(ids) > MAX_POOL_METERS:
        raise Invalid("at most %d meters in a pool" % MAX_POOL_METERS)
    from ..models import Concentrator
    found = dict(session.exec(select(Meter.id, Concentrator.property_id)
                              .join(Concentrator, Concentrator.id == Meter.concentrator_id)
                              .where(Meter.id.in_(ids))).all())
    bad = [i for i in ids if found.get(i) != property_id]
    if bad:
        raise Invalid("no meter %s in this property" % ", ".join(map(str, bad)))
    return ids


def create_pool(session, actor, property_id, name, kind=KIND_COMMON, rule=RULE_AREA, building_id=None,
                meter_ids=(), vacant_weight_pct=0, price=None, tolerance_pct=8, window_h=24):
    _property(session, actor, property_id)
    actor.check(P.POOLS_WRITE, property_id)
    ids = _check(session, property_id, kind, rule, building_id, meter_ids, vacant_weight_pct)
    if session.exec(select(ApportionPool.id).where(ApportionPool.property_id == property_id,
                                                   ApportionPool.name == name)).first() is not None:
        raise Conflict("a pool named %r exists" % name)
    p = ApportionPool(property_id=property_id, name=name, kind=kind, rule=rule, building_id=building_id,
                      meter_ids=ids, vacant_weight_pct=vacant_weight_pct, price_mu_per_kwh=_price(price),
                      tolerance_pct=tolerance_pct, window_h=window_h)
    session.add(p)
    session.flush()
    audit.record(session, actor, "apportionment.pool_create", "apportion_pool", p.id, property_id=property_id,
                 after=pool_public(p))
    return p


def update_pool(session, actor, pool_id, name, rule, building_id=None, meter_ids=(), vacant_weight_pct=0,
                price=None, tolerance_pct=8, window_h=24, active=True):
    p = get_pool(session, actor, pool_id)
    actor.check(P.POOLS_WRITE, p.property_id)
    ids = _check(session, p.property_id, p.kind, rule, building_id, meter_ids, vacant_weight_pct)
    other = session.exec(select(ApportionPool.id).where(ApportionPool.property_id == p.property_id,
                                                        ApportionPool.name == name)).first()
    if other is not None and other != p.id:
        raise Conflict("a pool named %r exists" % name)
    before = pool_public(p)
    p.name, p.rule, p.building_id, p.meter_ids = name, rule, building_id, ids
    p.vacant_weight_pct, p.price_mu_per_kwh = vacant_weight_pct, _price(price)
    p.tolerance_pct, p.window_h, p.active, p.updated = tolerance_pct, window_h, active, now_s()
    session.add(p)
    session.flush()
    audit.record(session, actor, "apportionment.pool_update", "apportion_pool", p.id, property_id=p.property_id,
                 before=before, after=pool_public(p))
    return p


# ------------------------------------------------------------ computing a month
def pool_meter_ids(pools):
    return {mid for p in pools for mid in p.meter_ids}


def scope_units(session, property_id, building_id):
    q = select(Unit).where(Unit.property_id == property_id)
    if building_id is not None:
        q = q.where(Unit.building_id == building_id)
    return session.exec(q.order_by(Unit.id)).all()


def unit_meters(session, unit_ids, exclude):
    """{unit id: [meter pk]} of the units' own meters (pool meters excluded)."""
    out = {u: [] for u in unit_ids}
    if unit_ids:
        for mid, uid in session.exec(select(Meter.id, Meter.unit_id).where(Meter.unit_id.in_(sorted(unit_ids)))
                                     .order_by(Meter.id)).all():
            if mid not in exclude:
                out[uid].append(mid)
    return out


def unit_parts(session, unit_ids, start, end):
    """{unit id: [(from, to, account id or None)]}: who occupied each unit over
    [start, end), None for the stretches nobody did, in time order."""
    occ = {u: [] for u in unit_ids}
    if unit_ids:
        for o in session.exec(select(Occupancy).join(Account, Account.id == Occupancy.account_id)
                              .where(Occupancy.unit_id.in_(sorted(unit_ids)), Account.kind == KIND_TENANT,
                                     Occupancy.start < end, (Occupancy.end.is_(None)) | (Occupancy.end > start))
                              .order_by(Occupancy.start, Occupancy.id)).all():
            occ[o.unit_id].append((max(start, o.start), min(end, o.end if o.end is not None else end), o.account_id))
    out = {}
    for u, stretches in occ.items():
        parts, t = [], start
        for a, b, acc in stretches:
            if b <= a or b <= t:
                continue
            a = max(a, t)
            if a > t:
                parts.append((t, a, None))
            parts.append((a, b, acc))
            t = b
        if t < end:
            parts.append((t, end, None))
        out[u] = parts
    return out


def pool_price(session, pool, start):
    """mu per kWh: the pool's own price, else the property's tariff at `start`
    (flat band, base tier) through concentrator.tariff. None: no tariff."""
    if pool.price_mu_per_kwh is not None:
        return pool.price_mu_per_kwh
    versions = tariffs.property_versions(session, pool.property_id)
    if not versions:
        return None
    try:
        return T.marginal_price(versions, T.new_state(), start, "flat")
    except (KeyError, ValueError):
        return None


def _same_scope(a, b):
    return a.building_id == b.building_id


def compute_pool(session, pool, pools, start, end, vacancy_id, names):
    """One pool's month: its energy, price, amount and every part's share."""
    units = scope_units(session, pool.property_id, pool.building_id)
    uids = [u.id for u in units]
    excluded = pool_meter_ids(pools)
    own = unit_meters(session, uids, excluded)
    res = {"pool": pool_public(pool), "energy_wh": 0, "price_mu_per_kwh": None, "amount_mu": 0, "lines": [],
           "accounts": {}, "warning": None}
    pool_wh = sum(month_energy(session, pool.meter_ids, start, end).values())
    if pool.kind == KIND_LOSS:
        tenant_ids = [m for ms in own.values() for m in ms]
        common_ids = sorted(pool_meter_ids([p for p in pools if p.kind == KIND_COMMON and _same_scope(p, pool)])
                            - set(pool.meter_ids))
        tenant_wh = sum(month_energy(session, tenant_ids, start, end).values())
        common_wh = sum(month_energy(session, common_ids, start, end).values())
        res.update(master_wh=pool_wh, tenant_wh=tenant_wh, common_wh=common_wh)
        pool_wh = max(0, pool_wh - tenant_wh - common_wh)
        if res["master_wh"] < tenant_wh + common_wh:
            res["warning"] = "the sub-meters measured more than the master meter: no loss to share"
    price = pool_price(session, pool, start)
    res["energy_wh"], res["price_mu_per_kwh"] = pool_wh, price
    if price is None:
        res["warning"] = "no price: give the pool a price or the property a tariff"
        return res
    amount = pool_wh * price // 1000
    res["amount_mu"] = amount
    parts = unit_parts(session, uids, start, end)
    lines = []
    for u in units:
        for a, b, acc in parts[u.id]:
            pct = FULL if acc is not None else pool.vacant_weight_pct
            account_id = acc if acc is not None else vacancy_id
            base = None
            if pool.rule == RULE_AREA:
                base = u.floor_area_dm2
            elif pool.rule == RULE_EQUAL:
                base = 1
            elif pool.rule == RULE_CONSUMPTION:
                base = sum(month_energy(session, own[u.id], a, b).values())
            weight = base * pct * (1 if pool.rule == RULE_CONSUMPTION else (b - a))
            lines.append({"key": (u.id, account_id, a), "unit_id": u.id, "unit": u.name, "account_id": account_id,
                          "account": names.get(account_id, ""), "vacant": acc is None, "from": a, "to": b,
                          "seconds": b - a, "base": base, "weight_pct": pct, "weight": weight})
    weights = [(ln["key"], ln["weight"]) for ln in lines]
    if amount and not any(w for _k, w in weights):
        res["warning"] = "nothing to split by (no floor area, no consumption or no units): not shared"
        res["amount_mu"] = 0
        amount = 0
    money = largest_remainder(amount, weights)
    energy = largest_remainder(pool_wh if amount else 0, weights)
    for ln in lines:
        ln["share_mu"], ln["energy_wh"] = money[ln["key"]], energy[ln["key"]]
        del ln["key"]
        acc = res["accounts"].setdefault(ln["account_id"], {"amount_mu": 0, "energy_wh": 0})
        acc["amount_mu"] += ln["share_mu"]
        acc["energy_wh"] += ln["energy_wh"]
    res["lines"] = lines
    return res


def preview(session, actor, property_id, month):
    """The month's apportionment, every pool, without posting anything."""
    prop = _property(session, actor, property_id)
    actor.check(P.REPORTS_READ, property_id)
    start, end = month_bounds(month, prop.tz_offset_s)
    pools = session.exec(select(ApportionPool).where(ApportionPool.property_id == property_id,
                                                     ApportionPool.active.is_(True))
                         .order_by(ApportionPool.id)).all()
    vacancy = vacancy_account(session, property_id)
    names = dict(session.exec(select(Account.id, Account.name).where(Account.property_id == property_id)).all())
    posted = set(session.exec(select(ApportionShare.pool_id).where(ApportionShare.month == month,
                                                                   ApportionShare.pool_id.in_([p.id for p in pools]))
                              .distinct()).all()) if pools else set()
    out = []
    for p in pools:
        r = compute_pool(session, p, pools, start, end, vacancy.id, names)
        r["posted"] = p.id in posted
        out.append(r)
    return {"property_id": property_id, "month": month, "start": start, "end": end, "pools": out,
            "total_mu": sum(r["amount_mu"] for r in out), "complete": end <= now_s()}


def _detail(prop_month, r, account_id, pool):
    lines = [ln for ln in r["lines"] if ln["account_id"] == account_id]
    return {"pool": pool.name, "kind": pool.kind, "rule": pool.rule, "month": prop_month,
            "pool_energy_wh": r["energy_wh"], "pool_amount_mu": r["amount_mu"],
            "price_mu_per_kwh": r["price_mu_per_kwh"], "vacant_weight_pct": pool.vacant_weight_pct,
            "master_wh": r.get("master_wh"), "tenant_wh": r.get("tenant_wh"), "common_wh": r.get("common_wh"),
            "total_weight": sum(ln["weight"] for ln in r["lines"]),
            "units": [{k: ln[k] for k in ("unit", "vacant", "from", "to", "base", "weight_pct", "weight",
                                          "share_mu", "energy_wh")} for ln in lines]}


def _pool_summary(r):
    return {k: r[k] for k in ("energy_wh", "price_mu_per_kwh", "amount_mu", "warning")} | {
        "pool_id": r["pool"]["id"], "name": r["pool"]["name"], "rule": r["pool"]["rule"],
        "kind": r["pool"]["kind"], "accounts": len([a for a in r["accounts"].values() if a["amount_mu"]])}


def run_public(run, already=False, pools=None, property_id=None, month=None):
    if run is None:
        return {"id": None, "property_id": property_id, "month": month, "posted": None, "total_mu": 0,
                "total": format_money(0), "shares": 0, "already_posted": already, "pools": pools or []}
    return {"id": run.id, "property_id": run.property_id, "month": run.month, "posted": run.posted,
            "total_mu": run.total_mu, "total": format_money(run.total_mu), "shares": run.shares,
            "already_posted": already, "pools": run.pools}


def post(session, actor, property_id, month, idempotency_key=None, now=None):
    """Post the month: for every active pool not yet posted for it, one
    `apportionment` ledger entry per account with a share (minus the share),
    each linked to its ApportionShare (the published breakdown). Audited.
    -> run_public(...): already_posted when nothing was left to post."""
    now = int(now if now is not None else now_s())
    prop = _property(session, actor, property_id)
    actor.check(P.MONEY_APPORTION, property_id)
    if idempotency_key:
        run = session.exec(select(ApportionRun).where(ApportionRun.idempotency_key == idempotency_key)).first()
        if run is not None:
            if run.property_id != property_id or run.month != month:
                raise Conflict("that idempotency key was used for another posting")
            return run_public(run, already=True)
    # one posting of a property at a time (the row lock; SQLite serialises writers anyway)
    session.exec(select(Property.id).where(Property.id == property_id).with_for_update()).one()
    start, end = month_bounds(month, prop.tz_offset_s)
    if end > now:
        raise Conflict("%s is not over yet: preview it, post it after its last day" % month)
    view = preview(session, actor, property_id, month)
    todo = [r for r in view["pools"] if not r["posted"] and r["amount_mu"] > 0]
    if not todo:
        return run_public(None, already=True, property_id=property_id, month=month,
                          pools=[_pool_summary(r) for r in view["pools"]])
    run = ApportionRun(property_id=property_id, month=month, idempotency_key=idempotency_key, user_id=actor.user_id,
                       posted=now, pools=[_pool_summary(r) for r in todo])
    session.add(run)
    session.flush()
    pools = {p.id: p for p in session.exec(select(ApportionPool).where(
        ApportionPool.id.in_([r["pool"]["id"] for r in todo]))).all()}
    total, n, touched = 0, 0, set()
    for r in todo:
        pool = pools[r["pool"]["id"]]
        for account_id, acc in sorted(r["accounts"].items()):
            if not acc["amount_mu"]:
                continue
            share = ApportionShare(run_id=run.id, pool_id=pool.id, account_id=account_id, month=month,
                                   amount_mu=acc["amount_mu"], energy_wh=acc["energy_wh"],
                                   detail=_detail(month, r, account_id, pool))
            session.add(share)
            session.flush()
            e = ledger.post(session, account_id, APPORTIONMENT, -acc["amount_mu"], user_id=actor.user_id,
                            source=actor.source if actor.source in ("desk", "api", "cli") else "system",
                            reference="apportionment:%s/pool:%d/share:%d" % (month, pool.id, share.id),
                            note="%s %s: %s kWh (%s)" % (month, pool.name, format_kwh(acc["energy_wh"]), pool.rule),
                            created=now)
            session.flush()
            share.ledger_entry_id = e.id
            session.add(share)
            total += acc["amount_mu"]
            n += 1
            touched.add(account_id)
    run.total_mu, run.shares = total, n
    session.add(run)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("%s was posted at the same time by someone else: reload" % month)
    audit.record(session, actor, "apportionment.post", "apportion_run", run.id, property_id=property_id,
                 after={"month": month, "total_mu": total, "shares": n,
                        "pools": [{"id": s["pool_id"], "name": s["name"], "amount_mu": s["amount_mu"]}
                                  for s in run.pools]})
    meters = session.exec(select(Meter).where(Meter.account_id.in_(sorted(touched)))).all()
    if meters:
        pushes.queue_credit_for_meters(session, meters)
    return run_public(run)


def list_runs(session, actor, property_id, paging=None):
    _property(session, actor, property_id)
    q = select(ApportionRun).where(ApportionRun.property_id == property_id).order_by(ApportionRun.id.desc())
    return listed(session, q, paging)


# ------------------------------------------------------------ the tenant's breakdown
def shares_of(session, account_id, month=None, limit=24):
    q = select(ApportionShare).where(ApportionShare.account_id == account_id)
    if month is not None:
        q = q.where(ApportionShare.month == month)
    return session.exec(q.order_by(ApportionShare.month.desc(), ApportionShare.pool_id).limit(limit)).all()


def breakdown(share):
    d = share.detail
    return {"id": share.id, "month": share.month, "pool": d.get("pool"), "kind": d.get("kind"), "rule": d.get("rule"),
            "energy_wh": share.energy_wh, "share_mu": share.amount_mu, "pool_energy_wh": d.get("pool_energy_wh"),
            "pool_mu": d.get("pool_amount_mu"), "price_mu_per_kwh": d.get("price_mu_per_kwh"),
            "vacant_weight_pct": d.get("vacant_weight_pct"), "total_weight": d.get("total_weight"),
            "units": d.get("units", []), "ledger_entry_id": share.ledger_entry_id}
