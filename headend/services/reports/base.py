"""What every report shares: the filters (property, building, local date
range), who may read it (P.REPORTS_READ on the property), and the result
(columns, rows, totals, chart) that the page, the CSV and the XLSX render.

Values stay integers (Wh, mu, counts, Unix s) until they are shown."""
import datetime

from sqlmodel import select

from ...core import permissions as P
from ...models import Building, Property
from ..errors import Invalid, NotFound

DAY = 86400
MAX_DAYS = 3700                 # ten years and a bit: what one report may cover

# column kinds
TEXT, INT, KWH, MONEY, DATE, MONTH, TIME = "text", "int", "kwh", "money", "date", "month", "time"


class Col:
    __slots__ = ("key", "title", "kind", "total")

    def __init__(self, key, title, kind=TEXT, total=False):
        self.key, self.title, self.kind, self.total = key, title, kind, total


class Report:
    """name: the report's slug; columns [Col]; rows [dict] (values by
    Col.key); totals: dict of the summed columns (None: no totals row);
    chart: {"kind": "bar"|"line"|"hbar", "x": [...], "unit": "kWh"|"money"|"",
    "series": [{"name": ..., "data": [numbers], "stack": bool}]}."""

    def __init__(self, name, title, filters, columns, rows, chart=None, notes=()):
        self.name, self.title, self.filters = name, title, filters
        self.columns, self.rows, self.chart, self.notes = columns, rows, chart, list(notes)
        tot = [c for c in columns if c.total]
        self.totals = {c.key: sum(r.get(c.key) or 0 for r in rows) for c in tot} if tot else None

    def as_dict(self):
        return {"report": self.name, "title": self.title, "filters": self.filters.as_dict(),
                "columns": [{"key": c.key, "title": c.title, "kind": c.kind} for c in self.columns],
                "rows": self.rows, "totals": self.totals, "chart": self.chart}


def parse_day(text, what):
    try:
        return datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise Invalid("%s: a date YYYY-MM-DD, got %r" % (what, text))


class Filters:
    """property (checked), building (of that property), local days
    [start_day, end_day] inclusive; start/end: their Unix times [start, end)."""

    def __init__(self, prop, building, start_day, end_day):
        self.prop, self.building = prop, building
        self.property_id, self.building_id = prop.id, building.id if building else None
        self.tz = prop.tz_offset_s
        self.start_day, self.end_day = start_day, end_day
        self.start = to_ts(start_day, self.tz)
        self.end = to_ts(end_day, self.tz) + DAY

    def as_dict(self):
        return {"property_id": self.property_id, "building_id": self.building_id,
                "start": self.start_day.isoformat(), "end": self.end_day.isoformat()}


def to_ts(day, tz):
    return (day - datetime.date(1970, 1, 1)).days * DAY - tz


def local_day(ts, tz):
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=(ts + tz) // DAY)


def filters(session, actor, property_id=None, building_id=None, start=None, end=None, now=None):
    """The filters of a report as asked, checked: the actor must see the
    property and hold REPORTS_READ on it (else NotFound / Forbidden).
    Without a property: the first the actor sees. Without dates: this
    local month up to today."""
    from ..properties import list_properties
    if property_id is None:
        props = list_properties(session, actor)
        if not props:
            raise NotFound("no property")
        prop = props[0]
    else:
        prop = session.get(Property, property_id)
        if prop is None or not actor.sees(prop.id):
            raise NotFound("no property %s" % property_id)
    actor.check(P.REPORTS_READ, prop.id)
    building = None
    if building_id is not None:
        building = session.get(Building, building_id)
        if building is None or building.property_id != prop.id:
            raise NotFound("no building %s in this property" % building_id)
    import time
    today = local_day(int(now if now is not None else time.time()), prop.tz_offset_s)
    end_day = parse_day(end, "end") if end else today
    start_day = parse_day(start, "start") if start else end_day.replace(day=1)
    if end_day < start_day:
        raise Invalid("the end date is before the start date")
    if (end_day - start_day).days > MAX_DAYS:
        raise Invalid("at most %d days at a time" % MAX_DAYS)
    return Filters(prop, building, start_day, end_day)


def buildings_of(session, property_id):
    return session.exec(select(Building).where(Building.property_id == property_id).order_by(Building.name)).all()
