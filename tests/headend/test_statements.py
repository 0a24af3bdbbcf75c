"""Monthly statements (issue 11, check 2, the statement part) and TOU advice,
on a real SQLite file fed by real signed uplinks with band registers: a
month of hourly readings under a TOU tariff with a tier, sales, an
adjustment and an apportionment entry.

Hand check (September 2026, 30 days, tenant A at a steady 500 W):
  valley 00-08 (8 h), peak 08-20 (12 h), flat 20-24 (4 h) every day
  valley 30 x 8 x 0.5 = 120 kWh x 0.3000 =  36.00
  peak   30 x 12 x 0.5 = 180 kWh x 1.0000 = 180.00
  flat   30 x 4 x 0.5  =  60 kWh x 0.6000 =  36.00
  tier   360 - 100     = 260 kWh x 0.0500 =  13.00
  consumption                             = 265.00
  opening 498.80 (500.00 sold in August - 1.20 for 2 kWh on Aug 31 20-24 h, flat)
  + 200.00 sale + 5.00 adjustment - 12.34 apportionment - 265.00 = closing 426.46
TOU advice for A: 20 % of 180 kWh = 36 kWh x (1.0000 - 0.3000) = 25.20;
10 % -> 12.60; 30 % -> 37.80.
"""
import subprocess

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from concentrator import protocol
from concentrator import tariff as T
from headend.core.config import Settings
from headend.ingest import Ingest
from headend.main import create_app
from headend.models import Account, Concentrator, LedgerEntry, Statement, StatementRun
from headend.models.ledger import APPORTIONMENT
from headend.services import corrections, ledger, statements, tou_advice, users
from headend.services.actor import system_actor
from headend.services.sales import sell
from headend.services.seed import seed_site
from headend.web import statement_doc
from tests.headend.test_headend_ingest import Board

TZ = 28800
SEPT = T.days_from_civil(2026, 9, 1) * 86400 - TZ          # 2026-09-01 00:00 local
OCT = T.days_from_civil(2026, 10, 1) * 86400 - TZ
AUG20 = SEPT - 12 * 86400
H = 3600
SPEC = {"prices": {"peak": 10000, "flat": 6000, "valley": 3000},
        "tou": {"days": {"all": [["00:00", "valley"], ["08:00", "peak"], ["20:00", "flat"]]},
                "seasons": [{"from": "01-01", "to": "12-31", "weekday": "all"}]},
        "tiers": [{"from_wh": 0, "add": 0}, {"from_wh": 100000, "add": 500}],
        "cycle": {"day": 1, "months": 1, "start_month": 1}, "effective": 0}
POWER = {"A-1": 500, "B-1": 250}


class World:
    pass


def pdf_text(data, tmp_path, name):
    assert data.startswith(b"%PDF")
    f = tmp_path / name
    f.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("statements")
    app = create_app(Settings(database_url="sqlite:///" + str(tmp / "s.db")), start_mqtt=False)
    w = World()
    w.app, w.sf, w.tmp = app, app.state.session_factory, tmp
    with w.sf() as s:
        res = seed_site(s, "Statement Court", [{"dev": "sc1", "meters": [
            {"id": "A-1", "model": "sdm120", "opening_energy_wh": 0, "tenant": "Lin Xiaoyu"},
            {"id": "B-1", "model": "sdm120", "opening_energy_wh": 0, "tenant": "NEIGHBOUR Gao"}]}],
            tariff_name="tou", tariff_spec=dict(SPEC), commit=False)
        sa = system_actor(s)
        m = res["concentrators"]["sc1"]["meters"]
        w.a, w.b = m["A-1"]["account_id"], m["B-1"]["account_id"]
        w.pid = res["property_id"]
        for acc in (w.a, w.b):
            sell(s, sa, acc, 500 * 10000, push=False, now=AUG20)
        key = s.exec(select(Concentrator.key_hex).where(Concentrator.dev == "sc1")).one()
        users.create_user(s, sa, "lin", "lin-portal-pw", tenant_id=m["A-1"]["tenant_id"])
        users.create_user(s, sa, "gao", "gao-portal-pw", tenant_id=m["B-1"]["tenant_id"])
        users.create_user(s, sa, "boss", "boss-manager-pw", role="manager", property_ids=[w.pid])
        other = seed_site(s, "Other Court", [], tariff_price_mu_per_kwh=6000, commit=False)
        users.create_user(s, sa, "otherboss", "otherboss-pw", role="manager", property_ids=[other["property_id"]])
        s.commit()
    board = Board("sc1", key)
    now = [SEPT]
    ingest = Ingest(w.sf, clock=lambda: now[0])
    versions = [dict(SPEC, version=1, tz_offset_s=TZ)]
    regs = {mid: {b: 0 for b in T.BANDS} for mid in POWER}
    states = {mid: T.new_state() for mid in POWER}
    seq = 0
    # Aug 31 20:00 .. Oct 1 08:00 local, a reading an hour, 8 hours a message, entered at the last reading - 1 s
    t = SEPT - 4 * H
    recs = []
    while t < OCT + 8 * H:
        for idx, mid in enumerate(POWER):
            band = T.band_at(versions, t)
            regs[mid][band] += POWER[mid]
            r = [regs[mid][b] for b in T.BANDS]
            T.charge_registers(versions, states[mid], dict(regs[mid]), t + H - 1)     # what the board charges
            charged = T.total_charged(states[mid])
            seq += 1
            recs.append([seq, protocol.KIND_READING, idx, t + H, [sum(r), POWER[mid], 0, charged] + r])
        t += H
        if (t - SEPT) % (8 * H) == 0:
            now[0] = t - 1
            ingest.handle(*board.rd(recs))
            recs = []
            if t == SEPT + 10 * 86400:          # the desk's movements, in time order with the readings
                with w.sf() as s:
                    sa = system_actor(s)
                    sell(s, sa, w.a, 200 * 10000, push=False, now=t)
                    corrections.adjust(s, sa, w.a, 5 * 10000, "meter read by hand", now=t + 1, push=False)
                    ledger.post(s, w.a, APPORTIONMENT, -123400, user_id=sa.user_id, source="system",
                                reference="pool:lift/2026-09", note="lift, by floor area", created=t + 2)
                    s.commit()
    w.client = TestClient(app)
    w.client.__enter__()
    yield w
    w.client.__exit__(None, None, None)


def bearer(w, user, pw):
    r = w.client.post("/api/auth/token", data={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def doc_of(w, account_id, month="2026-09"):
    with w.sf() as s:
        return statements.document(s, s.get(Account, account_id), month)


def test_consumption_by_band_and_tier_hand_checked(w):
    d = doc_of(w, w.a)
    c = d["consumption"]
    bands = {ln["band"]: (ln["energy_wh"], ln["price_mu_per_kwh"], ln["amount_mu"])
             for ln in c["lines"] if ln["kind"] == "band"}
    assert bands == {"valley": (120000, 3000, 360000), "peak": (180000, 10000, 1800000),
                     "flat": (60000, 6000, 360000)}
    tiers = [(ln["from_wh"], ln["to_wh"], ln["energy_wh"], ln["amount_mu"]) for ln in c["lines"] if ln["kind"] == "tier"]
    assert tiers == [(100000, None, 260000, 130000)]
    assert c["charged_mu"] == 2650000 == c["lines_mu"] and c["rounding_mu"] == 0 and c["other_mu"] == 0
    assert c["energy_wh"] == 360000 and len(c["days"]) == 30 and set(c["days"]) == {12000}
    assert d["movements"]["consumption"] == -2650000


def test_opening_plus_movements_is_closing_to_the_mu_against_the_ledger(w):
    d = doc_of(w, w.a)
    assert d["opening_mu"] == 4988000
    assert d["movements"]["recharge"] == 2000000 and d["movements"]["adjustment"] == 50000
    assert d["movements"]["apportionment"] == -123400
    assert d["closing_mu"] == 4264600
    with w.sf() as s:
        for acc in (w.a, w.b):
            rows = s.exec(select(LedgerEntry).where(LedgerEntry.account_id == acc).order_by(LedgerEntry.id)).all()
            for month, (start, end) in (("2026-08", (SEPT - 31 * 86400, SEPT)), ("2026-09", (SEPT, OCT)),
                                        ("2026-10", (OCT, OCT + 31 * 86400))):
                doc = statements.document(s, s.get(Account, acc), month)
                inside = [e for e in rows if start <= e.created < end]
                before = [e for e in rows if e.created < start]
                assert doc["opening_mu"] == (before[-1].balance_after_mu if before else 0)
                assert doc["opening_mu"] + sum(doc["movements"].values()) == doc["closing_mu"]
                assert doc["closing_mu"] == (inside or before or [None])[-1].balance_after_mu, month
                assert sum(doc["movements"].values()) == sum(e.amount_mu for e in inside)
        # what September's statements say and what the accounts hold today agree through October
        a = s.get(Account, w.a)
        octo = statements.document(s, a, "2026-10")
        assert octo["opening_mu"] == d["closing_mu"] and octo["closing_mu"] == a.balance_mu


def test_the_pdf_in_chinese_and_in_english(w, tmp_path):
    d = doc_of(w, w.a)
    zh = pdf_text(statement_doc.render_pdf(d, "zh-CN"), tmp_path, "zh.pdf")
    en = pdf_text(statement_doc.render_pdf(d, "en"), tmp_path, "en.pdf")
    for text in (zh, en):
        assert "Lin Xiaoyu" in text and "Statement Court" in text
        assert "426.46" in text and "265.00" in text and "498.80" in text and "-12.34" in text
        assert "180.000" in text and "1.0000" in text and "13.00" in text and "25.20" in text
    for piece in ("电费账单", "峰", "谷", "平", "期末余额", "期初余额", "公摊", "阶梯加价"):
        assert piece in zh, piece
    for piece in ("Monthly electricity statement", "peak", "valley", "flat", "Closing balance", "Opening balance",
                  "apportionment", "Tier surcharge"):
        assert piece in en, piece
    assert "Closing balance" not in zh and "电费账单" not in en


def test_tou_advice_hand_checked(w):
    with w.sf() as s:
        sa = system_actor(s)
        got = {p: tou_advice.advice(s, sa, w.a, p, month="2026-09") for p in (10, 20, 30)}
        b = tou_advice.advice(s, sa, w.b, 20, month="2026-09")
    assert got[20]["peak_wh"] == 180000 and got[20]["moved_wh"] == 36000 and got[20]["saving_mu"] == 252000
    assert got[10]["saving_mu"] == 126000 and got[30]["saving_mu"] == 378000
    assert b["peak_wh"] == 90000 and b["moved_wh"] == 18000 and b["saving_mu"] == 126000
    h = bearer(w, "lin", "lin-portal-pw")
    r = w.client.get("/api/portal/accounts/%d/tou-advice" % w.a, params={"share": 30, "month": "2026-09"}, headers=h)
    assert r.status_code == 200 and r.json()["saving_mu"] == 378000 and r.json()["saving"] == "37.80"
    assert w.client.get("/api/portal/accounts/%d/tou-advice" % w.b, headers=h).status_code == 404
    assert w.client.get("/api/portal/accounts/%d/tou-advice" % w.a, params={"share": 0}, headers=h).status_code == 422
    with pytest.raises(Exception):
        tou_advice.from_lines({"segments": []}, 101)


def test_a_run_issues_and_tenants_get_only_their_own(w, tmp_path):
    lin = bearer(w, "lin", "lin-portal-pw")
    assert w.client.get("/api/portal/statements/2026-09/pdf", headers=lin).status_code == 404     # not issued yet
    boss = bearer(w, "boss", "boss-manager-pw")
    r = w.client.post("/api/statements/runs", json={"property_id": w.pid, "month": "2026-09"}, headers=boss)
    assert r.status_code == 202, r.text
    run = w.client.get("/api/statements/runs/%d" % r.json()["id"], headers=boss).json()
    assert run["status"] == "done" and run["done"] == run["total"] >= 2
    with w.sf() as s:
        st = s.exec(select(Statement).where(Statement.account_id == w.a, Statement.month == "2026-09")).one()
        assert st.closing_mu == 4264600 and st.energy_wh == 360000
    # a month not over yet is refused, with a reason
    r = w.client.post("/api/statements/runs", json={"property_id": w.pid, "month": "2099-01"}, headers=boss)
    assert r.status_code == 422 and "not ended" in r.text
    # the tenant: their own, in both languages; nobody else's
    r = w.client.get("/api/portal/statements/2026-09/pdf", params={"lang": "en"}, headers=lin)
    assert r.status_code == 200 and "Lin Xiaoyu" in pdf_text(r.content, tmp_path, "own.pdf")
    for url in ("/api/portal/statements/2026-09/pdf?account_id=%d" % w.b, "/api/portal/statements/2026-08/pdf",
                "/api/accounts/%d/statements/2026-09/pdf" % w.b):
        assert w.client.get(url, headers=lin).status_code in (403, 404), url
    gao = bearer(w, "gao", "gao-portal-pw")
    miss = w.client.get("/api/portal/statements/2026-09/pdf?account_id=%d" % w.a, headers=gao)
    none = w.client.get("/api/portal/statements/2026-09/pdf?account_id=999999", headers=gao)
    assert miss.status_code == none.status_code == 404 and miss.text.replace(str(w.a), "N") == \
        none.text.replace("999999", "N")
    # the portal lists it; the web download answers the same way
    summary = w.client.get("/api/portal/accounts/%d" % w.a, headers=lin).json()
    assert [x["month"] for x in summary["statements"]] == ["2026-09"]
    # staff: any account of their property; another property's manager: nothing
    r = w.client.get("/api/accounts/%d/statements/2026-09" % w.b, headers=boss)
    assert r.status_code == 200 and r.json()["tenant"] == "NEIGHBOUR Gao"
    other = bearer(w, "otherboss", "otherboss-pw")
    assert w.client.get("/api/accounts/%d/statements/2026-09/pdf" % w.a, headers=other).status_code == 404
    assert w.client.get("/api/statements/runs/%d" % run["id"], headers=other).status_code == 404
    assert w.client.post("/api/statements/runs", json={"property_id": w.pid, "month": "2026-09"},
                         headers=other).status_code in (403, 404)
    assert w.client.get("/api/accounts/%d/statements/2026-13" % w.a, headers=boss).status_code == 422


def test_a_months_statements_in_one_zip(w, tmp_path):
    import io
    import zipfile
    boss = bearer(w, "boss", "boss-manager-pw")
    # before the month is issued: nothing to download, and it says why
    r = w.client.get("/api/statements/2026-08/zip", params={"property_id": w.pid}, headers=boss)
    assert r.status_code == 404 and "issue them first" in r.text
    r = w.client.post("/api/statements/runs", json={"property_id": w.pid, "month": "2026-09"}, headers=boss)
    assert r.status_code == 202, r.text
    r = w.client.get("/api/statements/2026-09/zip", params={"property_id": w.pid, "lang": "en"}, headers=boss)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert int(r.headers["content-length"]) == len(r.content) and r.headers["x-file-count"] == "2"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(z.namelist()) == ["statement-2026-09-%d.pdf" % w.a, "statement-2026-09-%d.pdf" % w.b]
    text = pdf_text(z.read("statement-2026-09-%d.pdf" % w.a), tmp_path, "za.pdf")
    assert "Lin Xiaoyu" in text and "426.46" in text and "Closing balance" in text
    assert "NEIGHBOUR Gao" in pdf_text(z.read("statement-2026-09-%d.pdf" % w.b), tmp_path, "zb.pdf")
    # another property's manager and a tenant get nothing
    other = bearer(w, "otherboss", "otherboss-pw")
    assert w.client.get("/api/statements/2026-09/zip", params={"property_id": w.pid},
                        headers=other).status_code == 404
    lin = bearer(w, "lin", "lin-portal-pw")
    assert w.client.get("/api/statements/2026-09/zip", params={"property_id": w.pid},
                        headers=lin).status_code == 403
    # the staff page links it; the web download is the same ZIP, in Chinese
    c = web_login(w, "boss", "boss-manager-pw")
    page = c.get("/staff/statements", params={"property_id": w.pid, "month": "2026-09"}).text
    assert "/staff/statements/2026-09.zip?property_id=%d&amp;lang=zh-CN" % w.pid in page
    r = c.get("/staff/statements/2026-09.zip", params={"property_id": w.pid, "lang": "zh-CN"})
    assert r.status_code == 200 and r.headers["x-file-count"] == "2"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert "期末余额" in pdf_text(z.read("statement-2026-09-%d.pdf" % w.a), tmp_path, "zc.pdf")


def web_login(w, user, pw):
    c = TestClient(w.app)
    r = c.post("/login", data={"username": user, "password": pw}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def test_staff_page_runs_with_progress_and_the_portal_downloads(w, tmp_path):
    from headend.api.deps import SESSION_COOKIE
    from headend.core import security
    from headend.models import AuthSession
    c = web_login(w, "boss", "boss-manager-pw")
    with w.sf() as s:
        csrf = s.exec(select(AuthSession).where(AuthSession.token_hash == security.token_hash(
            c.cookies[SESSION_COOKIE]))).one().csrf_token
    r = c.get("/staff/statements", params={"property_id": w.pid, "month": "2026-09"})
    assert r.status_code == 200 and 'id="statements-run"' in r.text
    r = c.post("/staff/statements/runs", data={"property_id": w.pid, "month": "2026-09", "csrf_token": csrf})
    assert r.status_code == 202 and 'id="statement-run"' in r.text
    with w.sf() as s:
        run = s.exec(select(StatementRun).order_by(StatementRun.id.desc())).first()
    r = c.get("/staff/statements/runs/%d" % run.id)
    assert r.status_code == 200 and 'data-status="done"' in r.text and "hx-trigger" not in r.text
    r = c.get("/staff/statements", params={"property_id": w.pid, "month": "2026-09"})
    assert 'data-account="%d"' % w.a in r.text and "426.46" in r.text
    r = c.get("/staff/statements/%d/2026-09.pdf" % w.b, params={"lang": "zh-CN"})
    assert r.status_code == 200 and "NEIGHBOUR Gao" in pdf_text(r.content, tmp_path, "b.pdf")
    r = c.post("/staff/statements/runs", data={"property_id": w.pid, "month": "bad", "csrf_token": csrf})
    assert r.status_code == 422 and "Refused" in r.text or "拒绝" in r.text
    t = web_login(w, "lin", "lin-portal-pw")
    page = t.get("/portal").text
    assert "/portal/statements/2026-09.pdf?account_id=%d" % w.a in page and "tou-advice" in page
    r = t.get("/portal/statements/2026-09.pdf", params={"account_id": w.a})
    assert r.status_code == 200 and "426.46" in pdf_text(r.content, tmp_path, "p.pdf")
    assert t.get("/portal/statements/2026-09.pdf", params={"account_id": w.b}).status_code == 404
    r = t.get("/portal/accounts/%d/advice" % w.a, params={"share": 10})
    assert r.status_code == 200 and 'data-saving-mu="' in r.text
    assert t.get("/portal/accounts/%d/advice" % w.b).status_code == 404


def test_the_cli_issues_a_property_month_and_writes_the_pdfs(w, tmp_path):
    from typer.testing import CliRunner

    from headend.cli.app import app as cli
    url = "sqlite:///" + str(w.tmp / "s.db")
    r = CliRunner().invoke(cli, ["--db", url, "statements", "run", "--property", "Statement Court", "--month",
                                 "2026-09", "--out", str(tmp_path / "out"), "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert "statements of 2026-09 issued" in r.output
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["statement-2026-09-%d.pdf" % w.a, "statement-2026-09-%d.pdf" % w.b]
    text = pdf_text((tmp_path / "out" / files[0]).read_bytes(), tmp_path, "cli.pdf")
    assert "Lin Xiaoyu" in text and "426.46" in text and "Closing balance" in text
    r = CliRunner().invoke(cli, ["--db", url, "statements", "run", "--property", "Statement Court", "--month",
                                 "2099-12"])
    assert r.exit_code != 0 and "not ended" in r.output
