"""The tenant portal: what a tenant sees of each of its own accounts.

Times are "as of" the account's latest reading (the newest data there is;
on a live site minutes ago): today, this month and the current price band
are those of that moment, in the property's local time.

Receipts come from services.receipts, online top-ups from services.payments;
statements() and apportionment() are the reports' (services of issue 11).
"""
import copy

from sqlmodel import select

from concentrator import tariff as T

from ..core import permissions as P
from ..models import LedgerEntry, Meter, Property, Unit, now_s
from ..models.ledger import RECHARGE, REFUND, REVERSAL
from . import accounts, alert_rules, tariffs, usage
from .errors import Conflict, Invalid

HISTORY_KINDS = (RECHARGE, REVERSAL, REFUND)
HISTORY_LIMIT = 20


def my_accounts(session, actor):
    actor.check(P.PORTAL)
    return accounts.list_accounts(session, actor)


def meter_view(m, versions, as_of, units):
    """One meter: relay, power, the band and price in force, money per hour."""
    band = price = per_hour = None
    if versions:
        band = T.band_at(versions, as_of)
        price = T.marginal_price(versions, copy.deepcopy(m.tariff_state) or T.new_state(), as_of, band)
        power = (m.last_power_w or 0) if m.relay_closed is not False else 0
        per_hour = power * price // 1000
    return {"id": m.id, "meter_id": m.meter_id, "unit": units.get(m.unit_id), "relay_closed": m.relay_closed,
            "online": m.online, "power_w": m.last_power_w, "energy_wh": m.last_energy_wh, "last_ts": m.last_ts,
            "band": band, "price_mu_per_kwh": price, "mu_per_hour": per_hour}


def account_view(session, actor, account_id, now=None, providers=None):
    """Everything the portal shows of one of the actor's own accounts."""
    a = accounts.get_account(session, actor, account_id)
    prop = session.get(Property, a.property_id)
    tz = prop.tz_offset_s
    meters = session.exec(select(Meter).where(Meter.account_id == a.id).order_by(Meter.meter_id)).all()
    ids = [m.id for m in meters]
    as_of = max([m.last_ts for m in meters if m.last_ts] or [now or now_s()])
    try:
        versions = tariffs.versions_for_account(session, a, a.property_id)
    except ValueError:
        versions = []
    unit_ids = sorted({m.unit_id for m in meters if m.unit_id is not None})
    units = dict(session.exec(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids))).all()) if unit_ids else {}
    mv = [meter_view(m, versions, as_of, units) for m in meters]
    rate = usage.cost_rate_per_day(session, ids, as_of)
    tenths = usage.days_left_tenths(a.balance_mu, rate)
    prev_month, month, _next = usage.local_month_starts(as_of, tz)
    day = usage.local_day_start(as_of, tz)
    today_wh, today_mu = usage.total(session, ids, day, as_of + 1)
    this_days = usage.buckets(session, ids, usage.day_edges(month, as_of + 1, tz))
    last_days = usage.buckets(session, ids, usage.day_edges(prev_month, month, tz))
    bands = sorted({v["band"] for v in mv if v["band"]})
    tenant = alert_rules.account_tenant(session, a)
    history = recharge_history(session, a.id)
    return {
        "account": a, "property": prop.name, "tz": tz, "as_of": as_of, "balance_mu": a.balance_mu,
        "low": a.balance_mu < alert_rules.amount_threshold(a, alert_rules.rules_for(session, a.property_id)
                                                             ["low_balance"]),
        "threshold_mu": a.low_balance_threshold_mu,
        "days_left": usage.format_tenths(tenths), "rate_per_day_mu": rate,
        "mu_per_hour": sum(v["mu_per_hour"] or 0 for v in mv) if versions else None,
        "band": bands[0] if len(bands) == 1 else None,
        "price_mu_per_kwh": mv[0]["price_mu_per_kwh"] if len(bands) == 1 else None,
        "meters": mv,
        "today": {"energy_wh": today_wh, "cost_mu": today_mu},
        "this_month": {"energy_wh": sum(b.energy_wh for b in this_days), "cost_mu": sum(b.cost_mu for b in this_days)},
        "last_month": {"energy_wh": sum(b.energy_wh for b in last_days), "cost_mu": sum(b.cost_mu for b in last_days)},
        "chart": {"this_month": [b.energy_wh for b in this_days], "last_month": [b.energy_wh for b in last_days]},
        "history": history,
        "receipts": {e.id: r for e in history for r in [receipt_of(session, e)] if r is not None},
        "statements": statements(session, actor, a.id),
        "apportionment": apportionment(session, actor, a.id),
        "topup_available": topup_available(providers),
        "tenant_id": tenant.id if tenant is not None else None,
    }


def recharge_history(session, account_id, limit=HISTORY_LIMIT):
    """Sales, reversals and refunds of the account, newest first (from the ledger)."""
    return session.exec(select(LedgerEntry).where(LedgerEntry.account_id == account_id,
                                                  LedgerEntry.kind.in_(HISTORY_KINDS))
                        .order_by(LedgerEntry.id.desc()).limit(limit)).all()


# ------------------------------------------------------------ seams
def statements(session, actor, account_id):
    """The account's issued monthly statements, newest first, as
    [{"month": "2026-11", "url": ..., "closing_mu"}] (services.statements)."""
    from . import statements as st
    accounts.get_account(session, actor, account_id)
    return [{"month": s.month, "url": "/portal/statements/%s.pdf?account_id=%d" % (s.month, account_id),
             "closing_mu": s.closing_mu} for s in st.issued(session, account_id)]


def apportionment(session, actor, account_id, month=None):
    """The account's shares of common-area and loss consumption (公摊), newest
    month first, each with its published breakdown:
    [{"month", "pool", "rule", "energy_wh", "share_mu", "pool_energy_wh", "pool_mu",
      "price_mu_per_kwh", "units": [...], "ledger_entry_id"}] (services/apportionment)."""
    from . import apportionment as ap
    a = accounts.get_account(session, actor, account_id)
    return [ap.breakdown(sh) for sh in ap.shares_of(session, a.id, month)]


def receipt_of(session, entry):
    """The receipt of a movement of money: {"id", "receipt_no"} or None."""
    from ..models.receipt import Receipt
    from .property_settings import of as settings_of
    from .receipts import receipt_no
    r = session.exec(select(Receipt).where(Receipt.ledger_entry_id == entry.id)).first()
    if r is None:
        return None
    return {"id": r.id, "receipt_no": receipt_no(settings_of(session, r.property_id).receipt_prefix, r.number)}


def topup_available(providers):
    """True when a payment provider is configured (services.payments)."""
    return bool(providers)


def start_topup(session, actor, account_id, amount_mu, providers, provider_name=None):
    """Start an online top-up of one's own account through the payments
    interface (services.payments.open_order) -> the order as the API shows it
    (its `pay` says where the tenant pays). The credit itself is posted when
    the provider confirms the payment, through services.sales.sell."""
    from . import payments
    accounts.get_account(session, actor, account_id)
    if not providers:
        raise Conflict("online top-up is not available on this site yet: please top up at the property office")
    provider = providers.get(provider_name) if provider_name else next(iter(providers.values()))
    if provider is None:
        raise Invalid("no payment provider %r" % provider_name)
    return payments.public(payments.open_order(session, actor, account_id, amount_mu, provider))
