"""What raises an alert and who hears of it: each property's rules (a row per
kind it changed, the defaults below for the others) and each tenant's own
preferences (channels, days-left threshold, quiet hours, language). The
amount below which a tenant is warned is the account's
low_balance_threshold_mu (the tenant sets it in the portal); without one,
the property's rule amount."""
from sqlmodel import select

from ..core import permissions as P
from ..core.money import format_money
from ..models import Account, AlertPreference, AlertRule, Property, Tenant, now_s
from ..models import alert as K
from . import audit
from .errors import Invalid, NotFound

# a kind's defaults: what a property gets until a manager changes its rule
DEFAULTS = {
    K.LOW_BALANCE: dict(notify_tenant=True, amount_mu=10 * 10000, days_left=3),
    K.RELAY_OPENED: dict(notify_tenant=True),
    K.RELAY_CLOSED: dict(notify_tenant=True),
    K.CONCENTRATOR_OFFLINE: dict(minutes=30),
    K.METER_OFFLINE: dict(),
    K.BUS_ERRORS: dict(per_hour=60),
    K.BILLING_MISMATCH: dict(repeat_s=86400),
    K.JOURNAL_THINNED: dict(repeat_s=86400),
    K.THEFT: dict(repeat_s=86400),
    K.BYPASS: dict(repeat_s=86400),
    K.RELAY_OPEN_ENERGY: dict(repeat_s=86400),
    K.REVERSE_ENERGY: dict(repeat_s=86400),
}
# the thresholds each kind uses (the others' are ignored)
RULE_FIELDS = {K.LOW_BALANCE: ("amount", "days_left"), K.CONCENTRATOR_OFFLINE: ("minutes",),
               K.BUS_ERRORS: ("per_hour",), K.BILLING_MISMATCH: ("repeat_s",), K.JOURNAL_THINNED: ("repeat_s",),
               K.THEFT: ("repeat_s",), K.BYPASS: ("repeat_s",), K.RELAY_OPEN_ENERGY: ("repeat_s",),
               K.REVERSE_ENERGY: ("repeat_s",)}
# kinds a tenant hears of (the others reach staff only)
TENANT_KINDS = (K.LOW_BALANCE, K.RELAY_OPENED, K.RELAY_CLOSED)
# sent at once even in the tenant's quiet hours: the power is off now
URGENT_KINDS = (K.RELAY_OPENED,)
DEFAULT_LANGUAGE = "zh-CN"


def default_rule(property_id, kind):
    return AlertRule(property_id=property_id, kind=kind, **DEFAULTS[kind])


def rules_for(session, property_id):
    """{kind: AlertRule} of a property: its rows, the defaults for the rest
    (default rules are not added to the session)."""
    rows = {r.kind: r for r in session.exec(select(AlertRule).where(AlertRule.property_id == property_id)).all()}
    return {k: rows.get(k) or default_rule(property_id, k) for k in K.ALERT_KINDS}


class LazyRules:
    """rules_for() for the ingest hook: the property's rows in one query, a
    default rule built only for a kind that is asked for."""

    def __init__(self, session, property_id):
        self.property_id = property_id
        self.rows = {r.kind: r for r in session.exec(select(AlertRule).where(AlertRule.property_id == property_id))}

    def __getitem__(self, kind):
        if kind not in self.rows:
            self.rows[kind] = default_rule(self.property_id, kind)
        return self.rows[kind]


def staff_emails(rule):
    return [e.strip() for e in (rule.staff_emails or "").split(",") if e.strip()]


def rule_public(rule):
    return {"property_id": rule.property_id, "kind": rule.kind, "enabled": rule.enabled,
            "notify_tenant": rule.notify_tenant, "staff_emails": staff_emails(rule), "amount_mu": rule.amount_mu,
            "amount": format_money(rule.amount_mu) if rule.amount_mu is not None else None,
            "days_left": rule.days_left, "minutes": rule.minutes, "per_hour": rule.per_hour,
            "repeat_s": rule.repeat_s, "is_default": rule.id is None}


def _visible_property(session, actor, property_id):
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)


def list_rules(session, actor, property_id):
    _visible_property(session, actor, property_id)
    return list(rules_for(session, property_id).values())


def update_rule(session, actor, property_id, kind, changes):
    """Change a property's rule for `kind`; `changes` holds only the fields
    given (amount as money text, staff_emails as a list). Audited."""
    from ..core.money import AmountError, parse_amount
    _visible_property(session, actor, property_id)
    actor.check(P.ALERTS_CONFIGURE, property_id)
    if kind not in K.ALERT_KINDS:
        raise NotFound("no alert kind %r" % kind)
    rule = rules_for(session, property_id)[kind]
    before = rule_public(rule)
    for field, value in changes.items():
        if field == "amount":
            try:
                rule.amount_mu = None if value in (None, "") else parse_amount(value, positive=False)
            except AmountError as e:
                raise Invalid(str(e))
        elif field == "staff_emails":
            for e in value or []:
                if "@" not in e or "," in e or len(e) > 200 or any(c.isspace() for c in e):
                    raise Invalid("not an e-mail address: %r" % e[:60])
            rule.staff_emails = ",".join(value or [])
        else:
            setattr(rule, field, value)
    rule.updated = now_s()
    rule.updated_by_user_id = actor.user_id
    session.add(rule)
    session.flush()
    audit.record(session, actor, "alert.rule", "alert_rule", rule.id, property_id=property_id,
                 before=before, after=rule_public(rule))
    return rule


# ----------------------------------------------------------------- tenants
def channels_of(tenant):
    """The channels a tenant can be reached on (a phone: SMS, an address: e-mail)."""
    return [c for c, addr in ((K.SMS, tenant.phone), (K.EMAIL, tenant.email)) if addr]


def preference(session, tenant):
    """The tenant's preferences (a fresh default, not added, when it has none):
    every channel it can be reached on, the property's thresholds, no quiet hours."""
    row = session.exec(select(AlertPreference).where(AlertPreference.tenant_id == tenant.id)).first()
    return row or default_preference(tenant)


def default_preference(tenant):
    return AlertPreference(tenant_id=tenant.id, channels=channels_of(tenant))


def preferences_of(session, tenant_ids):
    """{tenant id: preferences} (defaults for those without a row)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return {}
    rows = {p.tenant_id: p for p in session.exec(select(AlertPreference).where(AlertPreference.tenant_id.in_(ids)))}
    missing = [i for i in ids if i not in rows]
    if missing:
        for t in session.exec(select(Tenant).where(Tenant.id.in_(missing))).all():
            rows[t.id] = default_preference(t)
    return rows


def _hm(minute):
    return None if minute is None else "%02d:%02d" % divmod(minute, 60)


def _minute(text):
    if text in (None, ""):
        return None
    h, m = int(text[:2]), int(text[3:])
    if h > 23 or m > 59:
        raise Invalid("%r is not a time of day (00:00 to 23:59)" % text)
    return h * 60 + m


def preference_public(tenant, pref):
    return {"tenant_id": tenant.id, "channels": list(pref.channels), "available_channels": channels_of(tenant),
            "days_left": pref.days_left, "quiet_start": _hm(pref.quiet_start_min),
            "quiet_end": _hm(pref.quiet_end_min), "language": pref.language or DEFAULT_LANGUAGE}


def own_tenant(session, actor):
    t = session.get(Tenant, actor.tenant_id) if actor.is_tenant else None
    if t is None:
        raise NotFound("no tenant")
    return t


def update_preference(session, actor, changes):
    """A tenant changes its own preferences; `changes` holds the fields given."""
    actor.check(P.PORTAL)
    tenant = own_tenant(session, actor)
    pref = preference(session, tenant)
    before = preference_public(tenant, pref)
    if "channels" in changes and changes["channels"] is not None:
        chans = list(dict.fromkeys(changes["channels"]))
        for c in chans:
            if c not in K.TENANT_CHANNELS:
                raise Invalid("unknown channel %r (sms, email)" % c)
        pref.channels = chans
    if "days_left" in changes:
        pref.days_left = changes["days_left"]
    if "quiet_start" in changes or "quiet_end" in changes:
        start = _minute(changes.get("quiet_start", _hm(pref.quiet_start_min)))
        end = _minute(changes.get("quiet_end", _hm(pref.quiet_end_min)))
        if (start is None) != (end is None) or (start is not None and start == end):
            raise Invalid("quiet hours need a start and a different end (or neither)")
        pref.quiet_start_min, pref.quiet_end_min = start, end
    if changes.get("language"):
        pref.language = changes["language"]
    pref.updated = now_s()
    session.add(pref)
    session.flush()
    audit.record(session, actor, "alert.preference", "tenant", tenant.id, property_id=tenant.property_id,
                 before=before, after=preference_public(tenant, pref))
    return tenant, pref


def set_threshold(session, actor, account_id, amount_mu):
    """The balance below which the account's tenant is warned (0: only the
    forecast and the property's rule). A tenant on its own account, or staff."""
    from .accounts import get_account
    a = get_account(session, actor, account_id)
    if not actor.is_tenant:
        actor.check(P.ACCOUNTS_WRITE, a.property_id)
    if isinstance(amount_mu, bool) or not isinstance(amount_mu, int) or not 0 <= amount_mu <= 10 ** 13:
        raise Invalid("threshold must be an amount of 0 or more")
    before = a.low_balance_threshold_mu
    a.low_balance_threshold_mu = amount_mu
    session.add(a)
    session.flush()
    audit.record(session, actor, "alert.threshold", "account", a.id, property_id=a.property_id,
                 before={"low_balance_threshold_mu": before}, after={"low_balance_threshold_mu": amount_mu})
    return a


def amount_threshold(account, rule):
    """The effective low-balance amount (mu) of an account, or 0 (none)."""
    return account.low_balance_threshold_mu or (rule.amount_mu or 0)


def days_threshold(pref, rule):
    return pref.days_left if pref is not None and pref.days_left is not None else (rule.days_left or 0)


def account_tenant(session, account):
    if not isinstance(account, Account) or account.tenant_id is None:
        return None
    return session.get(Tenant, account.tenant_id)
