"""Money, energy and time as people read and type them: one spelling each.

Money is an int in mu (1/10000 of the currency unit, so a fen is 100 mu);
energy an int in Wh; time Unix seconds UTC, shown in the property's local
time (UTC + tz_offset_s). Nothing here uses floats.
"""
import re
import time

MU_PER_UNIT = 10000
MU_PER_CENT = 100
MAX_AMOUNT_MU = 10 ** 9 * MU_PER_UNIT     # 1e9 currency units: anything above is a typo
# a price (mu per kWh; 1e5 currency units): with registers of at most 1e12 Wh
# (ingest.bounds) no charge can pass 1e18 mu, well inside a BIGINT
MAX_PRICE_MU_PER_KWH = 10 ** 9

_AMOUNT_RE = re.compile(r"^(-)?([0-9]{1,10})(?:\.([0-9]{1,4}))?$")


class AmountError(ValueError):
    pass


def parse_amount(text, decimals=2, signed=False, positive=True):
    """An exact decimal string of ASCII digits -> int mu.

    At most `decimals` decimals (2 for money people type: sales, refunds,
    adjustments; 4 = 1 mu for prices), no exponent, no sign unless `signed`,
    no spaces inside, at most 1e9 units. Raises AmountError with a message a
    cashier can read."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise AmountError('amount must be a decimal string such as "50.00"')
    s = text.strip()
    if len(s) > 20:
        raise AmountError("amount %r is too long" % s[:24])
    m = _AMOUNT_RE.match(s)
    if m is None:
        raise AmountError('amount %r is not a plain decimal number such as "50.00"' % s)
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    if sign and not signed:
        raise AmountError("amount %r must not be negative" % s)
    if len(frac) > decimals:
        raise AmountError("amount %r has more than %d decimals" % (s, decimals))
    mu = int(whole) * MU_PER_UNIT + int((frac + "0000")[:4])
    if mu > MAX_AMOUNT_MU:
        raise AmountError("amount %r is too large" % s)
    if sign:
        mu = -mu
    if positive and mu <= 0:
        raise AmountError("amount must be more than zero")
    if not positive and mu == 0:
        raise AmountError("amount must not be zero")
    return mu


def parse_kwh(text, decimals=3):
    """An exact decimal string of kWh ("12345.678") -> int Wh (a meter's
    register as a person reads it off the display). Raises AmountError."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise AmountError('a reading must be a decimal string of kWh such as "12345.678"')
    s = text.strip()
    m = _AMOUNT_RE.match(s) if len(s) <= 20 else None
    if m is None or m.group(1):
        raise AmountError('reading %r is not a plain number of kWh such as "12345.678"' % s[:24])
    frac = m.group(3) or ""
    if len(frac) > decimals:
        raise AmountError("reading %r has more than %d decimals" % (s, decimals))
    return int(m.group(2)) * 1000 + int((frac + "000")[:3])


def parse_day(text):
    """"2026-12-01" -> the same string, checked (a real calendar day), or AmountError."""
    import datetime
    try:
        if not isinstance(text, str) or len(text) != 10:
            raise ValueError
        datetime.date.fromisoformat(text)
    except ValueError:
        raise AmountError("%r is not a date YYYY-MM-DD" % (text,))
    return text


def next_day(date_text):
    """"2026-12-31" -> "2027-01-01"."""
    import datetime
    return (datetime.date.fromisoformat(date_text) + datetime.timedelta(days=1)).isoformat()


def format_exact(mu):
    """int mu -> "1234.5600": every mu shown (ledger detail, exports)."""
    sign = "-" if mu < 0 else ""
    mu = abs(int(mu))
    return "%s%d.%04d" % (sign, mu // MU_PER_UNIT, mu % MU_PER_UNIT)


def format_money(mu):
    """int mu -> "1234.56": to the fen, half away from zero (pages, receipts)."""
    neg = mu < 0
    cents, rest = divmod(abs(int(mu)), MU_PER_CENT)
    if rest * 2 >= MU_PER_CENT:
        cents += 1
    sign = "-" if neg and cents else ""
    return "%s%d.%02d" % (sign, cents // 100, cents % 100)


def format_kwh(wh):
    """int Wh -> "12.345" kWh (None -> None)."""
    if wh is None:
        return None
    sign = "-" if wh < 0 else ""
    wh = abs(int(wh))
    return "%s%d.%03d" % (sign, wh // 1000, wh % 1000)


def format_price(mu_per_kwh):
    """mu per kWh -> "0.6000" per kWh."""
    return format_exact(mu_per_kwh)


def format_percent(bp):
    """basis points -> "15.00 %"."""
    return "%d.%02d %%" % (bp // 100, bp % 100)


def format_local(ts, tz_offset_s=28800, seconds=True):
    """Unix s -> "2026-12-01 09:30:00" in the property's local time."""
    if not ts:
        return ""
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.gmtime(int(ts) + int(tz_offset_s)))


def local_date(ts, tz_offset_s=28800):
    """Unix s -> "2026-12-01", the local calendar day."""
    return time.strftime("%Y-%m-%d", time.gmtime(int(ts) + int(tz_offset_s)))


def day_bounds(date_text, tz_offset_s=28800):
    """"2026-12-01" (local) -> (start, end) Unix s of that local day."""
    import calendar
    y, m, d = (int(x) for x in date_text.split("-"))
    start = calendar.timegm((y, m, d, 0, 0, 0)) - int(tz_offset_s)
    return start, start + 86400


def now_s():
    return int(time.time())
