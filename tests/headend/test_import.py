"""Bulk import of buildings, units, tenants and meters from CSV and XLSX: a
dry run says what would change and every row's error and changes nothing; a
sheet with an error imports nothing; the same sheet twice changes nothing
the second time; Chinese headers, GB18030 and spreadsheet cells work."""
import datetime
import io

import openpyxl
from sqlmodel import select

from headend.cli import main as cli
from headend.models import Account, Meter, Receipt, Tenant, Unit
from headend.services import devices, properties, tariffs
from headend.services.actor import system_actor
from tests.headend.conftest import make_user

SHEET = ("building,unit,floor,area_m2,tenant,phone,id_number,contract_start,deposit,opening_credit,method,"
         "concentrator,meter,model,opening_kwh\n"
         "A,A-101,1,85.50,Li Wei,13800000001,110101199003071234,2027-01-01,2000.00,100.00,wechat,imp-c1,A101,"
         "sdm120,1234.5\n"
         "A,A-102,1,60,,,,,,,,imp-c1,A102,sdm120,0\n"
         "B,B-201,2,72.25,Zhou Min,13900000002,,,,,,,,,\n")


def _property(app):
    with app.state.session_factory() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Import Gardens")
        tariffs.create_tariff(s, sa, p.id, "flat", 6000)
        devices.create_concentrator(s, sa, p.id, "imp-c1")
        s.commit()
        return p.id


def _counts(app):
    with app.state.session_factory() as s:
        return tuple(len(s.exec(select(t)).all()) for t in (Unit, Tenant, Meter, Receipt))


def test_dry_run_then_import_then_nothing_more(app, client, admin):
    pid = _property(app)
    before = _counts(app)
    bad = SHEET + "B,B-202,x,60,,,,,,,,,,,\nB,B-203,2,60,,,,,,,,nowhere,B203,sdm120,0\n"
    r = admin.post("/api/import", params={"property_id": pid}, content=bad.encode())
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["dry_run"] and not rep["applied"] and rep["errors"] == 2
    lines = {row["line"]: row for row in rep["rows"]}
    assert lines[2]["changes"] == ["new building A", "new unit A-101", "new meter A101 on imp-c1",
                                   "tenant Li Wei moves into A-101 with 100.00 credit"]
    assert "floor 'x' is not a whole number" in lines[5]["error"]
    assert "no concentrator 'nowhere'" in lines[6]["error"]
    assert _counts(app) == before, "a dry run changes nothing"
    r = admin.post("/api/import", params={"property_id": pid, "dry_run": "false"}, content=bad.encode())
    assert not r.json()["applied"] and _counts(app) == before, "a sheet with errors imports nothing"
    r = admin.post("/api/import", params={"property_id": pid, "dry_run": "false"}, content=SHEET.encode())
    assert r.json()["applied"] and r.json()["errors"] == 0 and r.json()["changes"] == 9
    with app.state.session_factory() as s:
        li = s.exec(select(Account).where(Account.name == "Li Wei")).one()
        assert li.balance_mu == 1_000_000
        t = s.get(Tenant, li.tenant_id)
        assert (t.phone, t.id_number, t.deposit_mu) == ("13800000001", "110101199003071234", 20_000_000)
        a101 = s.exec(select(Meter).where(Meter.meter_id == "A101")).one()
        assert (a101.account_id, a101.billed_energy_wh) == (li.id, 1_234_500)
        assert s.exec(select(Unit).where(Unit.name == "B-201")).one().floor_area_dm2 == 7225
        assert s.exec(select(Receipt)).one().method == "wechat"
    again = admin.post("/api/import", params={"property_id": pid, "dry_run": "false"}, content=SHEET.encode())
    assert again.json()["changes"] == 0 and again.json()["errors"] == 0
    assert admin.get("/api/tenants", params={"q": "Li"}).json()[0]["id_number"] == "1101**********1234"


def test_xlsx_with_chinese_headers_and_a_gb18030_csv(app, client, admin):
    pid = _property(app)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["楼栋", "房号", "楼层", "面积", "租户", "电话", "合同开始", "预存"])
    ws.append(["C", "C-301", 3, 85.5, "王芳", "13700000003", datetime.date(2027, 2, 1), 50])
    ws.append(["C", "C-302", 3, 60, None, None, None, None])
    buf = io.BytesIO()
    wb.save(buf)
    r = admin.post("/api/import", params={"property_id": pid, "dry_run": "false", "filename": "units.xlsx"},
                   content=buf.getvalue())
    assert r.status_code == 200 and r.json()["applied"], r.text
    with app.state.session_factory() as s:
        u = s.exec(select(Unit).where(Unit.name == "C-301")).one()
        assert (u.floor, u.floor_area_dm2) == (3, 8550)
        wang = s.exec(select(Account).where(Account.name == "王芳")).one()
        assert wang.balance_mu == 500_000
    gb = "房号,租户\nD-401,赵雷\n".encode("gb18030")
    r = admin.post("/api/import", params={"property_id": pid, "dry_run": "false"}, content=gb)
    assert r.json()["applied"] and r.json()["rows"][0]["changes"][-1] == "tenant 赵雷 moves into D-401"
    for junk, why in ((b"", "empty"), (b"colour\nred\n", "unknown column"), (b"PK\x03\x04broken", "XLSX")):
        r = admin.post("/api/import", params={"property_id": pid}, content=junk)
        assert r.status_code == 422 and why in r.json()["detail"], (junk, r.text)


def test_the_cli_import_shows_the_dry_run_and_imports(app, client, tmp_path, capsys):
    _property(app)
    make_user(app, "importer", "admin")
    sheet = tmp_path / "units.csv"
    sheet.write_text(SHEET, encoding="utf-8")
    url = app.state.settings.database_url
    assert cli(["--db", url, "import", str(sheet), "--property", "Import Gardens", "--as", "importer"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing changed" in out and "new meter A101" in out
    assert _counts(app)[0] == 0
    assert cli(["--db", url, "import", str(sheet), "--property", "Import Gardens", "--as", "importer", "--apply"]) == 0
    assert "imported" in capsys.readouterr().out and _counts(app)[0] == 3
