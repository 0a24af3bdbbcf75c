"""A report as CSV (streamed row by row) and as XLSX (openpyxl write-only
workbook: numbers as numbers, dates as dates, column widths, a totals row;
written to a spooled temporary file and streamed from it with its size,
so the browser shows the download's progress).

    for chunk in csv_chunks(report, _): ...
    f, size = xlsx_file(report, _)        # f: a file positioned at 0
"""
import csv
import datetime
import io
import tempfile
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from .base import DATE, INT, KWH, MONEY, MONTH, TIME

FORMATS = {KWH: "#,##0.000", MONEY: "#,##0.00##", INT: "#,##0", DATE: "yyyy-mm-dd", MONTH: "yyyy-mm",
           TIME: "yyyy-mm-dd hh:mm", "hours": "#,##0.0"}
WIDTHS = {KWH: 14, MONEY: 14, INT: 10, DATE: 12, MONTH: 10, TIME: 17, "hours": 12}
CSV_BATCH = 500


def value(kind, v, tz):
    """A cell's value in the unit people read: kWh, money, a date..."""
    if v is None:
        return None
    if kind == KWH:
        return Decimal(int(v)) / 1000
    if kind == MONEY:
        return Decimal(int(v)) / 10000
    if kind == "hours":
        return (Decimal(int(v)) / 3600).quantize(Decimal("0.1"))
    if kind == TIME:
        return datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=int(v) + tz)
    if kind == MONTH and isinstance(v, datetime.date):
        return v.replace(day=1)
    return v


def _text(kind, v):
    if v is None:
        return ""
    if kind == MONTH:
        return v.isoformat()[:7]
    if kind == TIME:
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, (datetime.date, Decimal, int)):
        return str(v)
    s = str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@") else s     # no formulas from a tenant's name


def _lines(report, gettext):
    # texts translated now, while the request's language is set
    return _gen(report, [gettext(c.title) for c in report.columns], gettext("Total"))


def _gen(report, titles, total_word):
    tz = report.filters.tz
    cols = report.columns
    yield titles
    for r in report.rows:
        yield [_text(c.kind, value(c.kind, r.get(c.key), tz)) for c in cols]
    if report.totals is not None:
        yield [total_word if i == 0 else _text(c.kind, value(c.kind, report.totals.get(c.key), tz))
               if c.total else "" for i, c in enumerate(cols)]


def csv_chunks(report, gettext=lambda s: s):
    """The CSV (UTF-8 with BOM, so spreadsheet programs read Chinese), in chunks."""
    return _csv(_lines(report, gettext))


def _csv(lines):
    buf = io.StringIO()
    w = csv.writer(buf)
    buf.write("\ufeff")
    for i, line in enumerate(lines):
        w.writerow(line)
        if i % CSV_BATCH == CSV_BATCH - 1:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def row_count(report):
    return len(report.rows)


def xlsx_file(report, gettext=lambda s: s):
    """(file at 0, size in bytes) of the report as a workbook."""
    tz = report.filters.tz
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(gettext(report.title)[:31])
    cols = report.columns
    for i, c in enumerate(cols):
        width = WIDTHS.get(c.kind) or min(40, max(10, 2 + max([len(gettext(c.title))] + [
            len(str(r.get(c.key) or "")) for r in report.rows[:200]])))
        ws.column_dimensions[_letter(i)].width = max(width, len(gettext(c.title)) + 2)
    bold = Font(bold=True)

    def cell(v, kind=None, strong=False):
        x = WriteOnlyCell(ws, value=v)
        if kind in FORMATS:
            x.number_format = FORMATS[kind]
        if strong:
            x.font = bold
        return x
    ws.append([cell(gettext(c.title), strong=True) for c in cols])
    for r in report.rows:
        ws.append([cell(_num(value(c.kind, r.get(c.key), tz)), c.kind) for c in cols])
    if report.totals is not None:
        ws.append([cell(gettext("Total"), strong=True) if i == 0 else
                   cell(_num(value(c.kind, report.totals.get(c.key), tz)), c.kind, True) if c.total else cell(None)
                   for i, c in enumerate(cols)])
    f = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    wb.save(f)
    size = f.tell()
    f.seek(0)
    return f, size


def _num(v):
    # openpyxl stores Decimal as a number; keep integers integers
    if isinstance(v, Decimal) and v == v.to_integral_value():
        return int(v)
    return v


def _letter(i):
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def iter_file(f, chunk=64 * 1024):
    try:
        while True:
            b = f.read(chunk)
            if not b:
                return
            yield b
    finally:
        f.close()
