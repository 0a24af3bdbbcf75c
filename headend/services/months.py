"""Local calendar months, written "YYYY-MM" (models.base.MONTH_PATTERN): the
months that apportionment runs and statements are made for.

    start, end = bounds("2026-11", tz_offset_s)   # Unix s; Invalid for anything else
    month_of(ts, tz_offset_s) -> "2026-11";  previous(ts, tz_offset_s) -> the month before
"""
import re

from concentrator import tariff as T

from ..models.base import MONTH_PATTERN
from .errors import Invalid

DAY = 86400
_MONTH = re.compile(MONTH_PATTERN)


def bounds(month, tz_offset_s):
    """"2026-11" -> (start, end) Unix seconds of that local calendar month."""
    if not isinstance(month, str) or not _MONTH.match(month):
        raise Invalid("a month is written YYYY-MM, e.g. 2026-11 (got %r)" % (str(month)[:20],))
    y, m = int(month[:4]), int(month[5:])
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return (T.days_from_civil(y, m, 1) * DAY - tz_offset_s, T.days_from_civil(ny, nm, 1) * DAY - tz_offset_s)


def month_of(ts, tz_offset_s):
    """Unix s -> "YYYY-MM" of its local month."""
    y, m, _d = T.civil_from_days((ts + tz_offset_s) // DAY)
    return "%04d-%02d" % (y, m)


def previous(ts, tz_offset_s):
    """The local month before the one containing ts."""
    y, m, _d = T.civil_from_days((ts + tz_offset_s) // DAY)
    y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return "%04d-%02d" % (y, m)
