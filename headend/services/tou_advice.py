"""TOU advice (错峰用电建议): what a tenant would have saved last month by
moving a share of their peak-band energy to the valley band, priced with
the tariff versions that billed it. Exact integer mu.

For each tariff segment of the month (one version, one billing cycle:
services.statements.band_lines) with a peak and a valley price:

    moved_wh  = peak_wh * share_pct // 100          (whole Wh, rounded down)
    saving    = sum(moved_wh * (peak price - valley price)) // 1000   (mu)

The total energy does not change, so tier surcharges do not change either.
"""
from ..core import permissions as P
from ..core.money import format_money
from ..models import Property
from . import accounts, months
from .errors import Invalid

SHARES_PCT = (10, 20, 30)       # what the portal form offers
DEFAULT_SHARE_PCT = 20
FROM_BAND, TO_BAND = "peak", "valley"


def check_share(share_pct):
    if isinstance(share_pct, bool) or not isinstance(share_pct, int) or not 1 <= share_pct <= 100:
        raise Invalid("the share to move must be a whole percentage from 1 to 100")
    return share_pct


def from_lines(consumption, share_pct=DEFAULT_SHARE_PCT):
    """Advice from band_lines' answer -> {"share_pct", "peak_wh", "moved_wh", "saving_mu",
    "peak_price_mu_per_kwh", "valley_price_mu_per_kwh", "applicable"}. Not applicable (saving 0)
    when no tariff of the month prices both bands or nothing was used at peak."""
    check_share(share_pct)
    peak_wh = moved = exact = 0
    pp = pv = None
    applicable = False
    for seg in consumption["segments"]:
        prices = seg.get("prices") or {}
        if prices.get(FROM_BAND) is None or prices.get(TO_BAND) is None:
            continue
        applicable = True
        e = seg["bands"].get(FROM_BAND, 0)
        m = e * share_pct // 100
        peak_wh += e
        moved += m
        exact += m * (prices[FROM_BAND] - prices[TO_BAND])
        pp, pv = prices[FROM_BAND], prices[TO_BAND]       # the month's last prices, for the sentence
    return {"share_pct": share_pct, "peak_wh": peak_wh, "moved_wh": moved, "saving_mu": max(exact, 0) // 1000,
            "peak_price_mu_per_kwh": pp, "valley_price_mu_per_kwh": pv,
            "applicable": applicable and peak_wh > 0}


def advice(session, actor, account_id, share_pct=DEFAULT_SHARE_PCT, now=None, month=None):
    """The advice for one of the tenant's own accounts (or, for staff, an
    account of their properties), from the last full local month before
    `now` (default: the account's newest reading) or from `month`."""
    import time

    from . import statements
    check_share(share_pct)
    a = accounts.get_account(session, actor, account_id)
    if not actor.is_tenant:
        actor.check(P.PROPERTY_READ, a.property_id)
    prop = session.get(Property, a.property_id)
    if now is None:       # as of the account's newest reading, like the portal (services.portal)
        from sqlmodel import func, select

        from ..models import Meter
        now = session.exec(select(func.max(Meter.last_ts)).where(Meter.account_id == a.id)).one() or time.time()
    now = int(now)
    month = month or months.previous(now, prop.tz_offset_s)
    start, end = months.bounds(month, prop.tz_offset_s)
    out = from_lines(statements.band_lines(session, a, start, end), share_pct)
    out["month"] = month
    out["account_id"] = a.id
    out["saving"] = format_money(out["saving_mu"])
    return out

