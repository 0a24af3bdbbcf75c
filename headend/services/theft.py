"""Bypass and theft detection: each sign an alert with its numbers and a
link to the meter.

* bypass (kind `bypass`): for every active loss pool, its master meter(s)
  against Σ its sub-meters (the scope's unit meters and the common pools'
  meters) over the pool's sliding window (window_h, default 24 h): a loss
  above the pool's tolerance (default 8 % of the master) raises an alert
  naming the suspect — the sub-meter whose use in the window fell furthest
  below its own mean of the BASELINE_WINDOWS windows before (a bypass
  takes energy out of one meter's count, not the building's);
* energy while switched off (`energy_relay_open`): the register rising
  between two readings that both say the relay was open
  (protocol.FLAG_RELAY_OPEN): something is wired around the relay;
* reverse energy (`reverse_energy`): a reading with negative power beyond
  REVERSE_MIN_W (a meter wired backwards, or fed from the wrong side);
* tamper and cover-open events of meters that report them: raised by the
  ingest hook (services/alerts.THEFT_EVENT_CODES), not here.

Cost: nothing per message. check() runs from the notification worker
(transport/notifier.py, every WK_ALERT_CHECK_S) and looks at a property at
most once per SCAN_S (TheftScan), reading only the last SIGN_WINDOW_S of
readings for the meter signs and each loss pool's windows for the bypass.
An alert of a kind is raised at most once per subject per its rule's
repeat_s (a day by default).
"""
from sqlmodel import select

from concentrator import protocol

from ..core.money import format_kwh
from ..models import Account, ApportionPool, Concentrator, Meter, Reading
from ..models import alert as K
from ..models.apportionment import KIND_COMMON, KIND_LOSS
from ..models.theft import TheftScan
from . import alert_rules, alerts
from .apportionment import month_energy, pool_meter_ids, scope_units, unit_meters

SCAN_S = 3600                 # a property is looked at once an hour
SIGN_WINDOW_S = 2 * 3600      # meter signs: the readings of the last two hours (overlapping scans)
BASELINE_WINDOWS = 7          # bypass: a meter's usual use is its mean over the 7 windows before
MIN_MASTER_WH = 1000          # a master meter that counted less than 1 kWh in the window says nothing
RELAY_OPEN_MIN_WH = 10        # a register may tick once at the moment of opening
REVERSE_MIN_W = 20
# the meter's page with its curves (issue 11a's reports); the alert carries it
METER_LINK = "/staff/meters/{id}"


def meter_link(meter_pk):
    return METER_LINK.format(id=meter_pk)


def _kwh(wh):
    return format_kwh(wh)


def check(session, now):
    """The notification worker's periodic check: every property with boards,
    at most once per SCAN_S. -> alerts raised."""
    raised = []
    pids = sorted(set(session.exec(select(Concentrator.property_id)
                                   .where(Concentrator.property_id.is_not(None))).all()))
    for pid in pids:
        row = session.get(TheftScan, pid)
        if row is not None and 0 <= now - row.checked < SCAN_S:
            continue
        raised += scan_property(session, pid, now)
        row = row or TheftScan(property_id=pid, checked=now)
        row.checked = now
        session.add(row)
        session.flush()
    return raised


def scan_property(session, property_id, now):
    rules = alert_rules.rules_for(session, property_id)
    raised = meter_signs(session, property_id, now - SIGN_WINDOW_S, now, rules)
    pools = session.exec(select(ApportionPool).where(ApportionPool.property_id == property_id,
                                                     ApportionPool.active.is_(True))
                         .order_by(ApportionPool.id)).all()
    for p in pools:
        if p.kind == KIND_LOSS:
            a = bypass(session, p, pools, now, rules[K.BYPASS])
            if a is not None:
                raised.append(a)
    return raised


def _values(session, m):
    d = {"meter": m.meter_id, "link": meter_link(m.id)}
    a = session.get(Account, m.account_id) if m.account_id is not None else None
    if a is not None:
        d["name"] = a.name
    return d, a


def _raise(session, rule, now, kind, m, property_id, values, event_ts):
    acc = session.get(Account, m.account_id) if m.account_id is not None else None
    return alerts.raise_alert(session, rule, now, kind, "meter:%d" % m.id, property_id, values,
                              concentrator_id=m.concentrator_id, meter_id=m.id,
                              account_id=acc.id if acc is not None else None, event_ts=event_ts)


# ------------------------------------------------------------ meter signs
def meter_signs(session, property_id, start, end, rules):
    """Energy while switched off and reverse energy in readings of [start, end)."""
    in_property = (select(Meter.id).join(Concentrator, Concentrator.id == Meter.concentrator_id)
                   .where(Concentrator.property_id == property_id))
    window = (Reading.meter_id.in_(in_property), Reading.ts >= start, Reading.ts < end)
    relay_open = Reading.flags.op("&")(protocol.FLAG_RELAY_OPEN) != 0
    suspects = sorted(set(session.exec(select(Reading.meter_id).where(
        *window, relay_open | (Reading.power_w < -REVERSE_MIN_W)).distinct()).all()))
    raised = []
    for mid in suspects:
        rows = session.exec(select(Reading.ts, Reading.energy_wh, Reading.power_w, Reading.flags)
                            .where(Reading.meter_id == mid, Reading.ts >= start, Reading.ts < end)
                            .order_by(Reading.ts, Reading.seq)).all()
        open_wh, first, last, prev = 0, None, None, None
        reverse = [r for r in rows if r[2] < -REVERSE_MIN_W and not r[3] & protocol.FLAG_MISSING]
        for ts, wh, _p, flags in rows:
            if flags & protocol.FLAG_MISSING:
                continue
            is_open = bool(flags & protocol.FLAG_RELAY_OPEN)
            if prev is not None and prev[1] and is_open and wh > prev[0]:
                open_wh += wh - prev[0]
                first = first or prev[2]
                last = ts
            prev = (wh, is_open, ts)
        m = session.get(Meter, mid)
        values, _a = _values(session, m)
        if open_wh >= RELAY_OPEN_MIN_WH:
            a = _raise(session, rules[K.RELAY_OPEN_ENERGY], end, K.RELAY_OPEN_ENERGY, m, property_id,
                       dict(values, wh=open_wh, kwh=_kwh(open_wh), start=first, end=last), first)
            if a is not None:
                raised.append(a)
        if reverse:
            worst = min(r[2] for r in reverse)
            a = _raise(session, rules[K.REVERSE_ENERGY], end, K.REVERSE_ENERGY, m, property_id,
                       dict(values, power_w=worst, readings=len(reverse), start=reverse[0][0], end=reverse[-1][0]),
                       reverse[0][0])
            if a is not None:
                raised.append(a)
    return raised


# ------------------------------------------------------------ bypass
def sub_meters(session, pool, pools):
    """The meters a loss pool's master feeds: the scope's unit meters (pool
    meters excluded) and the same scope's common-area meters."""
    units = [u.id for u in scope_units(session, pool.property_id, pool.building_id)]
    own = unit_meters(session, units, pool_meter_ids(pools))
    common = pool_meter_ids([p for p in pools if p.kind == KIND_COMMON and p.building_id == pool.building_id])
    return sorted({m for ms in own.values() for m in ms} | (common - set(pool.meter_ids)))


def window_numbers(session, pool, pools, end):
    """(master Wh, {sub-meter: Wh}) over the pool's window ending at `end`."""
    w = pool.window_h * 3600
    master = sum(month_energy(session, pool.meter_ids, end - w, end).values())
    return master, month_energy(session, sub_meters(session, pool, pools), end - w, end)


def bypass(session, pool, pools, now, rule):
    """Master vs Σ sub-meters over the window; beyond the tolerance, an
    alert naming the suspect meter. -> the Alert or None."""
    master, subs = window_numbers(session, pool, pools, now)
    pool.checked_ts = now
    session.add(pool)
    sub = sum(subs.values())
    if master < MIN_MASTER_WH or (master - sub) * 100 <= pool.tolerance_pct * master:
        return None
    w = pool.window_h * 3600
    base_start = now - w * (BASELINE_WINDOWS + 1)
    usual = month_energy(session, list(subs), base_start, now - w)
    drops = sorted(((usual[mid] // BASELINE_WINDOWS - subs[mid], mid) for mid in subs), reverse=True)
    drop, suspect = drops[0] if drops else (0, None)
    values = {"pool": pool.name, "pool_id": pool.id, "master_wh": master, "sub_wh": sub,
              "master_kwh": _kwh(master), "sub_kwh": _kwh(sub), "loss_wh": master - sub,
              "loss_pct": "%d.%d" % divmod((master - sub) * 1000 // master, 10),
              "tolerance_pct": pool.tolerance_pct, "hours": pool.window_h, "meter": "?", "drop_kwh": "?"}
    refs = {}
    if suspect is not None and drop > 0:
        m = session.get(Meter, suspect)
        values.update(meter=m.meter_id, meter_pk=m.id, drop_wh=drop, drop_kwh=_kwh(drop), link=meter_link(m.id))
        refs = dict(meter_id=m.id, concentrator_id=m.concentrator_id,
                    account_id=m.account_id if m.account_id is not None else None)
    return alerts.raise_alert(session, rule, now, K.BYPASS, "pool:%d" % pool.id, pool.property_id, values,
                              event_ts=now, **refs)
