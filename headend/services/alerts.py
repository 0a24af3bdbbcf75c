"""Raising alerts, the staff inbox, acknowledging.

An alert is raised in the transaction of its cause, with its notifications
(services/notifications.py): for board events, the ingest's transaction,
through ONE call at the end of Ingest._handle:

    seen = alerts.track(session)            # at the start of the transaction
    ...                                     # the ingest adds events, ledger entries
    alerts.after_ingest(session, conc, now, seen, status_body)

Conditions (low balance, relay open, offline, bus errors) have an episode:
while an alert of that kind and subject is active, no other is raised
(repeats suppressed); it is cleared when the condition ends (a recharge
that lifts the balance, the relay closing, the board or meter coming back,
the error rate falling under half the rule's). One-off kinds (billing
mismatch, journal thinned, theft) are raised at most once per subject per
the rule's repeat_s. A concentrator that falls silent sends nothing, so
check_silence() runs from the notification worker every WK_ALERT_CHECK_S.
"""
from sqlalchemy import event as sa_event
from sqlalchemy import String, and_, bindparam, cast, func, literal, text
from sqlalchemy import insert as sa_insert
from sqlalchemy import update as sa_update
from sqlmodel import select

from concentrator import protocol

from ..core import bulk
from ..core import permissions as P
from ..core.events import EV_BILLING_MISMATCH
from ..core.money import format_money
from ..models import (Account, AccountForecast, Alert, AlertPreference, Concentrator, DeliveryAttempt, Event,
                      LedgerEntry, Meter, Notification, Property, now_s)
from ..models import alert as K
from ..models.account import KIND_TENANT
from ..models.ledger import CONSUMPTION
from . import alert_rules, messages, notifications, usage
from .actor import scoped
from .errors import NotFound

# The event codes of the theft detection: an event with one of these codes
# raises a `theft` alert for its meter (staff inbox, staff e-mail, webhooks),
# values["sign"] saying which. The rest of the theft detection (bypass,
# energy while switched off, reverse energy) is services/theft.py.
THEFT_SIGN_OF = {protocol.EV_TAMPER: "tamper", protocol.EV_COVER_OPEN: "cover open"}
THEFT_EVENT_CODES = tuple(THEFT_SIGN_OF)

BUS_ERROR_MIN_UPTIME_S = 3600     # a rate over less than an hour of uptime says little
FORECAST_REFRESH_S = 3 * 3600     # the low-balance forecast's rate (of 7 days) is recomputed every 3 hours


# ------------------------------------------------------------ tracking
class Seen:
    """The events and ledger entries a transaction added."""

    def __init__(self):
        self.events = []
        self.entries = []


def track(session):
    """Collect every Event and LedgerEntry added to `session` from now on."""
    seen = Seen()

    @sa_event.listens_for(session, "before_flush")
    def _collect(sess, _ctx, _instances):
        for o in sess.new:
            if isinstance(o, Event):
                seen.events.append(o)
            elif isinstance(o, LedgerEntry):
                seen.entries.append(o)
    return seen


# ------------------------------------------------------------ raising
def _active(session, key):
    return session.exec(select(Alert).where(Alert.dedup_key == key)).first()


def subject_key(kind, subject):
    return "%s:%s" % (kind, subject)


def raise_alert(session, rule, now, kind, subject, property_id, message_values, active=False, event=None,
                dedup_key=None, **refs):
    """Store an alert and queue its notifications, unless suppressed.
    -> the Alert or None."""
    if not rule.enabled:
        return None
    key = dedup_key or (subject_key(kind, subject) if active else None)
    if key is not None and _active(session, key) is not None:
        return None
    if not active and rule.repeat_s:
        recent = session.exec(select(Alert.id).where(Alert.property_id == property_id, Alert.kind == kind,
                                                     Alert.subject == subject, Alert.ts > now - rule.repeat_s)
                              .limit(1)).first()
        if recent is not None:
            return None
    event_ts = refs.pop("event_ts", None)
    a = Alert(property_id=property_id, kind=kind, subject=subject, dedup_key=key, ts=now, active=active,
              values=dict(message_values), message=messages.staff_line(kind, "en", message_values)[:500],
              event_id=event.id if event is not None else None,
              event_ts=event.ts if event is not None else event_ts, **refs)
    session.add(a)
    session.flush()
    notifications.queue_for_alert(session, a, rule, now)
    return a


def clear(session, key, now):
    """End the episode of the active alert with this key (if any)."""
    a = _active(session, key)
    if a is not None and a.active:
        a.active = False
        a.cleared = now
        a.dedup_key = None
        session.add(a)
    return a


# ------------------------------------------------------------ the ingest hook
def after_ingest(session, conc, now, seen, status_body=None):
    """Alerts for what one ingest transaction stored (see the module doc)."""
    after_ingest_many(session, [(conc, seen, status_body)], now)


def after_ingest_many(session, items, now):
    """after_ingest for the boards of one ingest transaction (a batch of
    messages): items [(conc, seen, status_body)], one board each. The
    boards' offline alerts are looked up in one query, and the low-balance
    check runs once per property over every account the batch charged."""
    items = [it for it in items if it[0].property_id is not None]
    if not items:
        return
    session.flush()
    keys = {subject_key(K.CONCENTRATOR_OFFLINE, "concentrator:%d" % conc.id) for conc, _s, _b in items}
    for a in session.exec(select(Alert).where(Alert.dedup_key.in_(sorted(keys)))).all():
        if a.active:
            a.active = False
            a.cleared = now
            a.dedup_key = None
            session.add(a)
    rules_of, last_of = {}, {}
    meters = {}
    # the active bus-error alerts of every board with a status here: one query for the batch
    with_status = sorted(conc.id for conc, _s, body in items if body is not None)
    active_bus = {}
    if with_status:
        for a in session.exec(select(Alert).where(Alert.kind == K.BUS_ERRORS, Alert.active.is_(True),
                                                  bulk.any_of(session, Alert.concentrator_id, with_status))).all():
            active_bus.setdefault(a.concentrator_id, []).append(a)

    def meter(mid):
        if mid is not None and mid not in meters:
            meters[mid] = session.get(Meter, mid)
        return meters.get(mid)
    for conc, seen, status_body in items:
        if not (seen.events or seen.entries or status_body):
            continue
        pid = conc.property_id
        if pid not in rules_of:
            rules_of[pid] = alert_rules.LazyRules(session, pid)
        rules = rules_of[pid]
        for ev in seen.events:
            if ev.concentrator_id == conc.id:
                _from_event(session, conc, ev, meter(ev.meter_id), rules, now)
        last_entry = last_of.setdefault(pid, {})
        for e in seen.entries:
            if e.kind == CONSUMPTION:
                last_entry[e.account_id] = e
        if status_body is not None:
            _bus_errors(session, conc, status_body, rules[K.BUS_ERRORS], now, active_bus)
    for pid, last_entry in last_of.items():
        if last_entry:
            low_balances(session, last_entry, rules_of[pid][K.LOW_BALANCE], now)


def _meter_values(session, m):
    d = {"meter": m.meter_id if m is not None else "?"}
    a = session.get(Account, m.account_id) if m is not None and m.account_id is not None else None
    if a is not None:
        d.update(name=a.name, balance=format_money(a.balance_mu))
    return d, a


def _from_event(session, conc, ev, m, rules, now):
    code, pid = ev.code, conc.property_id
    msub = "meter:%d" % m.id if m is not None else "concentrator:%d/meter:%s" % (conc.id, ev.meter_index)
    if code in (protocol.EV_RELAY_OPEN, protocol.EV_RELAY_CLOSE, protocol.EV_METER_OFFLINE,
                protocol.EV_METER_ONLINE, EV_BILLING_MISMATCH) or code in THEFT_EVENT_CODES:
        values, acc = _meter_values(session, m)
    else:
        values, acc = {}, None
    refs = dict(concentrator_id=conc.id, meter_id=m.id if m is not None else None,
                account_id=acc.id if acc is not None else None)
    tenant = dict(tenant_id=acc.tenant_id) if acc is not None else {}    # tenant kinds only
    if code == protocol.EV_RELAY_OPEN:
        values["reason"] = messages.relay_reason(ev.detail)
        raise_alert(session, rules[K.RELAY_OPENED], now, K.RELAY_OPENED, msub, pid, values, active=True, event=ev,
                    **refs, **tenant)
    elif code == protocol.EV_RELAY_CLOSE:
        was = clear(session, subject_key(K.RELAY_OPENED, msub), now)
        if was is not None:
            values["reason"] = messages.relay_reason(ev.detail)
            raise_alert(session, rules[K.RELAY_CLOSED], now, K.RELAY_CLOSED, msub, pid, values, event=ev,
                        dedup_key="event:%d:%s" % (ev.id, K.RELAY_CLOSED), **refs, **tenant)
    elif code == protocol.EV_METER_OFFLINE:
        raise_alert(session, rules[K.METER_OFFLINE], now, K.METER_OFFLINE, msub, pid, values, active=True,
                    event=ev, **refs)
    elif code == protocol.EV_METER_ONLINE:
        clear(session, subject_key(K.METER_OFFLINE, msub), now)
    elif code == EV_BILLING_MISMATCH:
        raise_alert(session, rules[K.BILLING_MISMATCH], now, K.BILLING_MISMATCH, msub, pid, values, event=ev,
                    **refs)
    elif code == protocol.EV_JOURNAL_THINNED:
        raise_alert(session, rules[K.JOURNAL_THINNED], now, K.JOURNAL_THINNED, "concentrator:%d" % conc.id, pid,
                    {"dev": conc.dev}, event=ev, concentrator_id=conc.id)
    elif code in THEFT_EVENT_CODES:
        values["sign"] = THEFT_SIGN_OF.get(code, "event %d" % code)
        if m is not None:
            from .theft import meter_link
            values["link"] = meter_link(m.id)
        raise_alert(session, rules[K.THEFT], now, K.THEFT, msub, pid, values, event=ev, **refs)


def low_balances(session, last_entries, rule, now):
    """Raise, keep or clear the low-balance alert of each account whose
    balance a consumption charge just lowered ({account id: its last
    entry}): below the amount threshold, or fewer days left at the recent
    use than the tenant's (or the property's) days threshold. Set-based:
    one statement says what is known of every account (low_balance_facts),
    and only what changes costs more."""
    facts = low_balance_facts(session, sorted(last_entries))
    if not facts:
        return
    keys = {aid: subject_key(K.LOW_BALANCE, "account:%d" % aid) for aid in facts}
    alert_ids = {f.alert_id: aid for aid, f in facts.items() if f.alert_id is not None}
    active = {alert_ids[a.id]: a for a in session.exec(select(Alert).where(Alert.id.in_(sorted(alert_ids)))).all()} \
        if alert_ids else {}
    # an active alert is looked at again only when the balance rose above the
    # one it last saw (money came in); charges alone keep the episode going
    todo = [a for aid, a in facts.items()
            if aid not in active or last_entries[aid].balance_after_mu > active[aid].values.get("balance_mu", 0)]
    if not todo:
        return                   # every low one is still in the same episode: nothing new to say
    # only the tenants' own days threshold matters here (a default preference has none)
    days_of = {a.id: a.own_days if a.own_days is not None else (rule.days_left or 0) for a in todo}
    cached = {a.id: a for a in todo if a.as_of is not None}
    rates = forecast_rates(session, {a.id: a.last_ts for a in todo if days_of[a.id] and a.last_ts}, cached,
                           {a.id: a.tz for a in todo})
    for a in todo:
        e = last_entries[a.id]
        balance = e.balance_after_mu
        amount = alert_rules.amount_threshold(a, rule)
        days = days_of[a.id]
        tenths = None
        if a.id in rates:
            tenths = usage.days_left_tenths(balance, rates[a.id])
        by_days = bool(days) and tenths is not None and tenths < days * 10
        low = by_days or bool(amount and balance < amount)
        cur = active.get(a.id)
        if cur is None:
            if low:
                values = {"name": a.name, "balance": format_money(balance), "balance_mu": balance,
                          "entry_id": e.id, "threshold": format_money(amount) if amount else None}
                if by_days:
                    values["days"] = usage.format_tenths(tenths)
                raise_alert(session, rule, now, K.LOW_BALANCE, "account:%d" % a.id, a.property_id, values,
                            active=True, account_id=a.id, tenant_id=a.tenant_id)
        elif not low:
            clear(session, keys[a.id], now)
        else:
            cur.values = dict(cur.values, balance_mu=balance, entry_id=e.id)   # topped up, still low: same episode
            session.add(cur)


def low_balance_facts(session, ids):
    """{account id: what the low-balance check needs of it} for the tenant
    accounts among `ids`, in ONE statement (it was six per ingest
    transaction): its name and own threshold, the id of its active
    low-balance alert, its tenant's own days threshold, its meters' last
    reading time, its stored forecast (rate_mu_per_day, as_of; as_of
    None when none is stored) and its property's UTC offset (tz)."""
    key = literal(subject_key(K.LOW_BALANCE, "account:"), String) + cast(Account.id, String)
    last_ts = select(func.max(Meter.last_ts)).where(Meter.account_id == Account.id).scalar_subquery()
    rows = session.exec(
        select(Account.id, Account.property_id, Account.tenant_id, Account.name, Account.low_balance_threshold_mu,
               Alert.id.label("alert_id"), AlertPreference.days_left.label("own_days"), last_ts.label("last_ts"),
               AccountForecast.rate_mu_per_day, AccountForecast.as_of, Property.tz_offset_s.label("tz"))
        .select_from(Account)
        .join(Property, Property.id == Account.property_id)
        .outerjoin(Alert, Alert.dedup_key == key)
        .outerjoin(AlertPreference, and_(AlertPreference.tenant_id == Account.tenant_id,
                                         AlertPreference.days_left.is_not(None)))
        .outerjoin(AccountForecast, AccountForecast.account_id == Account.id)
        .where(bulk.any_of(session, Account.id, ids), Account.kind == KIND_TENANT)).all()
    return {r.id: r for r in rows}


def _fresh(cached, end):
    return cached is not None and 0 <= end - cached.as_of < FORECAST_REFRESH_S


def forecast_rates(session, ends, cached, tzs=None):
    """forecast_rate of many accounts ({account id: end}, cached {account
    id: its AccountForecast row}) -> {account id: rate}: those due for a
    refresh are computed together (usage.account_cost_rates, one
    statement) and stored with one UPDATE and one INSERT, so a message pays
    a few statements every FORECAST_REFRESH_S, none in between."""
    out = {aid: cached[aid].rate_mu_per_day for aid, end in ends.items() if _fresh(cached.get(aid), end)}
    due = {aid: end for aid, end in ends.items() if aid not in out}
    if not due:
        return out
    rates = usage.account_cost_rates(session, due, tzs)
    old = [{"account_id": aid, "rate_mu_per_day": rates[aid], "as_of": due[aid]} for aid in sorted(due) if aid in cached]
    new = [{"account_id": aid, "rate_mu_per_day": rates[aid], "as_of": due[aid]} for aid in sorted(due)
           if aid not in cached]
    tbl = AccountForecast.__table__
    if old and session.get_bind().dialect.name == "postgresql":
        session.execute(text("UPDATE account_forecast SET rate_mu_per_day = v.r, as_of = v.t FROM "
                             "unnest(CAST(:a AS INTEGER[]), CAST(:r AS BIGINT[]), CAST(:t AS BIGINT[])) AS v (a, r, t) "
                             "WHERE account_forecast.account_id = v.a"),
                        {"a": [r["account_id"] for r in old], "r": [r["rate_mu_per_day"] for r in old],
                         "t": [r["as_of"] for r in old]})
    elif old:
        session.execute(sa_update(tbl).where(tbl.c.account_id == bindparam("aid"))
                        .values(rate_mu_per_day=bindparam("rate"), as_of=bindparam("at")),
                        [{"aid": r["account_id"], "rate": r["rate_mu_per_day"], "at": r["as_of"]} for r in old])
    if new:
        session.execute(sa_insert(tbl), new)
    out.update(rates)
    return out


def forecast_rate(session, account_id, end, cached=None):
    """The account's cost per day at its recent use up to `end` (its meters'
    latest reading; usage.cost_rate_per_day), kept in AccountForecast and
    computed again only FORECAST_REFRESH_S after the last computation: a
    week of readings is read every few hours, not at every message."""
    if cached is not None and 0 <= end - cached.as_of < FORECAST_REFRESH_S:
        return cached.rate_mu_per_day
    ids = session.exec(select(Meter.id).where(Meter.account_id == account_id)).all()
    f = (session.get(AccountForecast, account_id) if cached is not None else None) \
        or AccountForecast(account_id=account_id, as_of=end)
    f.rate_mu_per_day, f.as_of = usage.cost_rate_per_day(session, ids, end), end
    session.add(f)
    return f.rate_mu_per_day


def _bus_errors(session, conc, body, rule, now, active_bus_alerts):
    """Raise or clear the bus-error alerts of a status's meters.
    active_bus_alerts: {board id: its active bus-error alerts}, read once
    for a batch's boards."""
    up, rows = body.get("up"), body.get("bus")
    if not isinstance(up, int) or isinstance(up, bool) or up < BUS_ERROR_MIN_UPTIME_S or not isinstance(rows, list):
        return
    limit = rule.per_hour or 0
    if limit <= 0:
        return
    rates = {}
    if rows:
        # (id, index) only: a healthy board's status lists no meter, and this runs for every status
        by_index = dict(session.exec(select(Meter.index, Meter.id).where(Meter.concentrator_id == conc.id)).all())
        for row in rows:
            if (isinstance(row, list) and len(row) == 6 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                and x >= 0 for x in row) and row[0] in by_index):
                rates[by_index[row[0]]] = sum(row[1:5]) * 3600 // up
    for a in active_bus_alerts.get(conc.id, []):
        if body.get("bus_all", True) is not False and rates.get(a.meter_id, 0) * 2 < limit:
            clear(session, a.dedup_key, now)
    for mid, rate in sorted(rates.items()):
        if rate >= limit:
            m = session.get(Meter, mid)
            raise_alert(session, rule, now, K.BUS_ERRORS, "meter:%d" % mid, conc.property_id,
                        {"meter": m.meter_id, "per_hour": rate}, active=True, concentrator_id=conc.id,
                        meter_id=mid, event_ts=body.get("ts"))


# ------------------------------------------------------------ silence
def check_silence(session, now):
    """Raise `concentrator_offline` for every board silent longer than its
    property's rule allows. -> alerts raised."""
    raised = []
    concs = session.exec(select(Concentrator).where(Concentrator.last_seen.is_not(None),
                                                    Concentrator.property_id.is_not(None),
                                                    Concentrator.last_seen < now - 60)).all()
    rules = {}
    for c in concs:
        if c.property_id not in rules:
            rules[c.property_id] = alert_rules.rules_for(session, c.property_id)[K.CONCENTRATOR_OFFLINE]
        rule = rules[c.property_id]
        minutes = rule.minutes or 30
        if now - c.last_seen > minutes * 60:
            a = raise_alert(session, rule, now, K.CONCENTRATOR_OFFLINE, "concentrator:%d" % c.id, c.property_id,
                            {"dev": c.dev, "minutes": minutes}, active=True, concentrator_id=c.id,
                            event_ts=c.last_seen)
            if a is not None:
                raised.append(a)
    return raised


# ------------------------------------------------------------ the inbox
def list_alerts(session, actor, property_id=None, unacknowledged=False, limit=100, before_id=None):
    q = scoped(select(Alert), actor, Alert.property_id)
    if property_id is not None:
        q = q.where(Alert.property_id == property_id)
    if unacknowledged:
        q = q.where(Alert.acknowledged.is_(None))
    if before_id is not None:
        q = q.where(Alert.id < before_id)
    return session.exec(q.order_by(Alert.id.desc()).limit(max(1, min(limit, 1000)))).all()


def count_unacknowledged(session, actor):
    q = scoped(select(func.count()).select_from(Alert), actor, Alert.property_id)
    return session.exec(q.where(Alert.acknowledged.is_(None))).one()


def get_alert(session, actor, alert_id):
    a = session.get(Alert, alert_id)
    if a is None or actor.is_tenant or not actor.sees(a.property_id):
        raise NotFound("no alert %s" % alert_id)
    return a


def acknowledge(session, actor, alert_id, now=None):
    """Mark an alert handled (who and when are kept on it); acknowledging
    twice keeps the first."""
    a = get_alert(session, actor, alert_id)
    actor.check(P.ALERTS_ACK, a.property_id)
    if a.acknowledged is None:
        a.acknowledged = now or now_s()
        a.acknowledged_by_user_id = actor.user_id
        session.add(a)
    return a


def deliveries(session, actor, alert_id):
    """[(Notification, [DeliveryAttempt])] of an alert."""
    a = get_alert(session, actor, alert_id)
    rows = session.exec(select(Notification).where(Notification.alert_id == a.id).order_by(Notification.id)).all()
    tries = {}
    if rows:
        for t in session.exec(select(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_([n.id for n in rows]))
                              .order_by(DeliveryAttempt.id)).all():
            tries.setdefault(t.notification_id, []).append(t)
    return [(n, tries.get(n.id, [])) for n in rows]
