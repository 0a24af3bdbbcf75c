"""Bulk import of buildings, units, tenants (with their accounts, move-in
and opening credit) and meters from a CSV or XLSX sheet, one row per unit.

Every row goes through the same services as the dashboard, in a savepoint
of its own, so a dry run reports exactly what the real run would do (then
rolls everything back) and every row's error. A real run with any error
imports nothing. Importing the same sheet twice changes nothing the second
time.

Columns (header row; English or Chinese names, any order; only `unit` is
required): building 楼栋, unit 房号, floor 楼层, area_m2 面积, tenant 租户,
phone 电话, id_number 证件号, contract_start 合同开始, contract_end 合同结束,
deposit 押金, opening_credit 预存, method 支付方式, concentrator 集中器,
meter 表号, model 型号, index 序号, opening_kwh 起始读数."""
import csv
import io

from sqlmodel import select

from ..core import permissions as P
from ..core.money import AmountError, parse_amount, parse_kwh
from ..models import Account, Building, Concentrator, Meter, Occupancy, Property, Unit
from . import audit
from .errors import DomainError, Invalid, NotFound

MAX_ROWS = 10000
MAX_BYTES = 8 * 1024 * 1024
COLUMNS = {
    "building": ("building", "楼栋", "楼号"),
    "unit": ("unit", "房号", "单元", "房间"),
    "floor": ("floor", "楼层"),
    "area_m2": ("area_m2", "area", "面积"),
    "tenant": ("tenant", "租户", "姓名", "户名"),
    "phone": ("phone", "电话", "手机"),
    "id_number": ("id_number", "证件号", "身份证"),
    "contract_start": ("contract_start", "合同开始"),
    "contract_end": ("contract_end", "合同结束"),
    "deposit": ("deposit", "押金"),
    "opening_credit": ("opening_credit", "预存", "开户金额"),
    "method": ("method", "支付方式"),
    "concentrator": ("concentrator", "集中器"),
    "meter": ("meter", "表号", "电表"),
    "model": ("model", "型号"),
    "index": ("index", "序号"),
    "opening_kwh": ("opening_kwh", "起始读数"),
}
ALIASES = {a.lower(): k for k, names in COLUMNS.items() for a in names}
DEFAULT_BUILDING = "Building 1"


class SheetError(Invalid):
    pass


# ------------------------------------------------------------------ reading the sheet
def read_rows(data, filename=""):
    """CSV (UTF-8, with or without BOM; GB18030 from older spreadsheets) or
    XLSX bytes -> [(line number, {column: text})]."""
    if len(data) > MAX_BYTES:
        raise SheetError("the file is larger than %d MiB" % (MAX_BYTES // 2 ** 20))
    if data[:4] == b"PK\x03\x04" or filename.lower().endswith(".xlsx"):
        table = _xlsx(data)
    else:
        table = _csv(data)
    table = [r for r in table if any((c or "").strip() for c in r)]
    if not table:
        raise SheetError("the sheet is empty")
    header = [(h or "").strip().lower() for h in table[0]]
    cols = {}
    for i, h in enumerate(header):
        if h in ALIASES:
            cols[i] = ALIASES[h]
        elif h:
            raise SheetError("unknown column %r (columns: %s)" % (table[0][i], ", ".join(COLUMNS)))
    if "unit" not in cols.values():
        raise SheetError("the sheet needs a `unit` column")
    rows = []
    for n, r in enumerate(table[1:], 2):
        rows.append((n, {cols[i]: (r[i] or "").strip() for i in cols if i < len(r)}))
    if len(rows) > MAX_ROWS:
        raise SheetError("at most %d rows per import" % MAX_ROWS)
    return rows


def _csv(data):
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetError("the CSV is neither UTF-8 nor GB18030")
    return list(csv.reader(io.StringIO(text)))


def _xlsx(data):
    import openpyxl
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:      # a broken or foreign file: say so, never crash
        raise SheetError("not a readable XLSX file: %s" % type(e).__name__)
    ws = wb.worksheets[0]
    out = []
    for row in ws.iter_rows(values_only=True):
        out.append([_cell(v) for v in row])
    wb.close()
    return out


def _cell(v):
    import datetime
    if v is None:
        return ""
    if isinstance(v, datetime.datetime):
        return v.date().isoformat()
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, float):
        # a spreadsheet's number: shown as typed (85.5 -> "85.5", 3.0 -> "3")
        return ("%.6f" % v).rstrip("0").rstrip(".")
    return str(v)


# ------------------------------------------------------------------ one row
def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise Invalid("%s %r is not a whole number" % (what, text))


def _money(text, what):
    try:
        return parse_amount(text, positive=False)
    except AmountError as e:
        raise Invalid("%s: %s" % (what, e))


def _row(session, actor, property_id, r, changes):
    from . import devices, lifecycle, properties, tenants
    from .accounts import create_account
    bname = r.get("building") or DEFAULT_BUILDING
    b = session.exec(select(Building).where(Building.property_id == property_id, Building.name == bname)).first()
    if b is None:
        b = properties.create_building(session, actor, property_id, bname)
        changes.append("new building %s" % bname)
    uname = r.get("unit") or ""
    if not uname:
        raise Invalid("the unit is empty")
    floor = _int(r["floor"], "floor") if r.get("floor") else None
    area = _money(r["area_m2"], "area") // 100 if r.get("area_m2") else None
    u = session.exec(select(Unit).where(Unit.building_id == b.id, Unit.name == uname)).first()
    if u is None:
        u = properties.create_unit(session, actor, b.id, uname, floor=floor, floor_area_dm2=area or 0)
        changes.append("new unit %s" % uname)
    elif (floor is not None and u.floor != floor) or (area is not None and u.floor_area_dm2 != area):
        actor.check(P.PROPERTIES_WRITE, property_id)
        before = {"floor": u.floor, "floor_area_dm2": u.floor_area_dm2}
        u.floor = floor if floor is not None else u.floor
        u.floor_area_dm2 = area if area is not None else u.floor_area_dm2
        session.add(u)
        audit.record(session, actor, "unit.update", "unit", u.id, property_id=property_id, before=before,
                     after={"floor": u.floor, "floor_area_dm2": u.floor_area_dm2})
        changes.append("unit %s: floor/area updated" % uname)
    if r.get("meter"):
        _meter(session, actor, property_id, u, r, changes, devices)
    if r.get("tenant"):
        occ = session.exec(select(Occupancy).where(Occupancy.unit_id == u.id, Occupancy.end.is_(None))).first()
        if occ is not None:
            a = session.get(Account, occ.account_id)
            if a.name != r["tenant"]:
                raise Invalid("unit %s is occupied by %s: move them out first" % (uname, a.name))
            return      # the same tenant is there already
        t = tenants.create_tenant(session, actor, property_id, r["tenant"], phone=r.get("phone", ""),
                                  id_number=r.get("id_number", ""), contract_start=r.get("contract_start") or None,
                                  contract_end=r.get("contract_end") or None, deposit=r.get("deposit") or "0")
        a = create_account(session, actor, property_id, tenant_id=t.id)
        opening = _money(r["opening_credit"], "opening credit") if r.get("opening_credit") else 0
        lifecycle.move_in(session, actor, a.id, u.id, opening_credit_mu=opening, method=r.get("method") or "cash")
        changes.append("tenant %s moves into %s%s" % (t.name, uname, " with %s credit" % r["opening_credit"]
                                                      if opening else ""))


def _meter(session, actor, property_id, u, r, changes, devices):
    m = session.exec(select(Meter).where(Meter.meter_id == r["meter"])).first()
    if m is not None:
        if m.unit_id != u.id:
            raise Invalid("meter %s exists, in another unit" % r["meter"])
        return
    dev = r.get("concentrator") or ""
    conc = session.exec(select(Concentrator).where(Concentrator.dev == dev,
                                                   Concentrator.property_id == property_id)).first()
    if conc is None:
        raise Invalid("no concentrator %r in this property (give the concentrator of meter %s)" % (dev, r["meter"]))
    try:
        opening = parse_kwh(r["opening_kwh"]) if r.get("opening_kwh") else 0
    except AmountError as e:
        raise Invalid("opening reading: %s" % e)
    devices.create_meter(session, actor, conc.id, r["meter"], r.get("model", ""),
                         index=_int(r["index"], "index") if r.get("index") else None, unit_id=u.id,
                         opening_energy_wh=opening)
    changes.append("new meter %s on %s" % (r["meter"], dev))


# ------------------------------------------------------------------ the run
def run(session, actor, property_id, rows, dry_run=True, progress=None):
    """Import `rows` (read_rows) into a property. -> {"dry_run", "applied",
    "rows": [{"line", "unit", "changes", "error"}], "errors", "changes"}.
    Commits nothing: the caller commits a real run that `applied`."""
    if session.get(Property, property_id) is None or not actor.sees(property_id):
        raise NotFound("no property %s" % property_id)
    actor.check(P.PROPERTIES_WRITE, property_id)
    outer = session.begin_nested()
    report, errors, n_changes = [], 0, 0
    for k, (line, r) in enumerate(rows):
        changes = []
        sp = session.begin_nested()
        try:
            _row(session, actor, property_id, r, changes)
            session.flush()
            sp.commit()
            error = None
        except DomainError as e:
            sp.rollback()
            error, changes = e.message, []
            errors += 1
        n_changes += len(changes)
        report.append({"line": line, "unit": r.get("unit", ""), "changes": changes, "error": error})
        if progress is not None:
            progress(k + 1, len(rows))
    applied = not dry_run and errors == 0
    if applied:
        outer.commit()
        audit.record(session, actor, "import.apply", "property", property_id, property_id=property_id,
                     after={"rows": len(rows), "changes": n_changes})
    else:
        outer.rollback()
    return {"dry_run": dry_run, "applied": applied, "rows": report, "errors": errors, "changes": n_changes}


def template_csv():
    """An example sheet (UTF-8 with BOM, so spreadsheet programs read Chinese)."""
    return ("\ufeffbuilding,unit,floor,area_m2,tenant,phone,id_number,contract_start,contract_end,deposit,"
            "opening_credit,method,concentrator,meter,model,index,opening_kwh\n"
            "A,A-101,1,85.50,Li Wei,13800000001,110101199003071234,2027-01-01,2027-12-31,2000.00,100.00,cash,"
            "c1,A101,sdm120,0,1234.5\n"
            "A,A-102,1,60.00,,,,,,,,,c1,A102,sdm120,1,0\n")
