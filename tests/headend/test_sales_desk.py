"""The sales desk's money rules through the API and the dashboard: receipts
numbered per property without gaps, payment methods, idempotency keys,
reversals (the cashier's own sale the same day; a manager later), refunds,
adjustments with a reason, the day end per payment method and cashier, a
closed day that cannot change, the receipt as PDF in Chinese and English;
each action exactly one audit row."""
import re
import subprocess
import threading

from sqlmodel import func, select

from headend.api.deps import SESSION_COOKIE
from headend.core import db
from headend.models import AuditLog, LedgerEntry, Receipt, User
from headend.services import accounts, devices, ledger, properties, receipts, tariffs
from headend.services.actor import system_actor
from headend.services.sales import sell
from headend.services.users import actor_for, create_user


def _world(app):
    with app.state.session_factory() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Lotus Court")
        b = properties.create_building(s, sa, p.id, "Tower 1")
        u = properties.create_unit(s, sa, b.id, "1-0302", floor=3, floor_area_dm2=8550)
        tariffs.create_tariff(s, sa, p.id, "flat", 6000)
        c = devices.create_concentrator(s, sa, p.id, "lotus-c1")
        a = accounts.create_account(s, sa, p.id, tenant_name="Li Wei")
        accounts.occupy(s, sa, a.id, u.id)
        devices.create_meter(s, sa, c.id, "LT-0302", "sdm120", unit_id=u.id, opening_energy_wh=0)
        s.commit()
        return {"property": p.id, "account": a.id, "unit": u.id}


def _desk(app, login):
    w = _world(app)
    w["cashier"] = login("cashier-mei", "cashier", property_ids=[w["property"]])
    w["cashier2"] = login("cashier-zhou", "cashier", property_ids=[w["property"]])
    w["manager"] = login("manager-han", "manager", property_ids=[w["property"]])
    return w


def _sell(w, who="cashier", amount="50.00", **kw):
    return w[who].post("/api/accounts/%d/recharge" % w["account"], json=dict(kw, amount=amount))


def _audit(app, action):
    with app.state.session_factory() as s:
        return s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).all()


def _entries(app, kind=None):
    with app.state.session_factory() as s:
        q = select(LedgerEntry)
        if kind:
            q = q.where(LedgerEntry.kind == kind)
        return s.exec(q.order_by(LedgerEntry.id)).all()


def test_a_sale_has_a_numbered_receipt_with_method_and_reference(app, client, login):
    w = _desk(app, login)
    r = _sell(w, method="wechat", reference="4200009876543210")
    assert r.status_code == 201, r.text
    rc = r.json()["receipt"]
    assert (rc["receipt_no"], rc["kind"], rc["amount"], rc["method"], rc["reference"]) == (
        "R000001", "sale", "50.00", "wechat", "4200009876543210")
    assert (rc["tenant_name"], rc["unit_names"], rc["meter_ids"], rc["balance_after"], rc["cashier"]) == (
        "Li Wei", "1-0302", "LT-0302", "50.00", "cashier-mei")
    assert r.json()["entry"]["username"] == "cashier-mei" and r.json()["credits_pushed"] == 1   # to the board
    r2 = _sell(w, "cashier2", "12.30")            # method: cash unless said
    assert r2.json()["receipt"]["receipt_no"] == "R000002" and r2.json()["receipt"]["method"] == "cash"
    listing = w["manager"].get("/api/receipts", params={"day": rc["business_day"]}).json()
    assert [x["receipt_no"] for x in listing] == ["R000002", "R000001"]
    assert w["cashier"].get("/api/receipts/%d" % rc["id"]).json()["receipt_no"] == "R000001"
    assert _sell(w, method="bitcoin").status_code == 422
    sale = _audit(app, "money.sale")[-1]
    assert sale.after["receipt"] == 2 and sale.after["method"] == "cash"


def test_bad_amounts_are_refused_and_take_no_receipt_number(app, client, login):
    w = _desk(app, login)
    for bad in ("1e3", "1.001", "-5", "0", "NaN", "12,50", "１２", 12.5, None):
        r = _sell(w, amount=bad)
        assert r.status_code == 422, (bad, r.text)
    assert _entries(app) == []
    assert _sell(w).json()["receipt"]["number"] == 1, "a refused sale takes no number"


def test_the_same_idempotency_key_sells_once(app, client, login):
    w = _desk(app, login)
    first = _sell(w, idempotency_key="a3c1f0e2-double-click")
    again = _sell(w, idempotency_key="a3c1f0e2-double-click")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True and again.json()["receipt"]["id"] == first.json()["receipt"]["id"]
    assert len(_entries(app, "recharge")) == 1 and len(_audit(app, "money.sale")) == 1
    other = _sell(w, amount="60.00", idempotency_key="a3c1f0e2-double-click")
    assert other.status_code == 409 and "idempotency key" in other.json()["detail"]
    assert w["manager"].get("/api/accounts/%d" % w["account"]).json()["balance"] == "50.00"
    # a double-submitted desk form: both posts answer with the same receipt
    r = client.post("/login", data={"username": "cashier-mei", "password": "cashier-mei-password"},
                    follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, r.cookies[SESSION_COOKIE])
    page = client.get("/staff/desk/accounts/%d" % w["account"]).text
    form = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1),
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1),
            "amount": "20.00", "method": "alipay"}
    url = "/staff/desk/accounts/%d/sell" % w["account"]
    a, b = client.post(url, data=form, follow_redirects=False), client.post(url, data=form, follow_redirects=False)
    assert a.status_code == b.status_code == 303 and a.headers["location"] == b.headers["location"]
    assert len(_entries(app, "recharge")) == 2
    client.cookies.clear()


def test_reversal_rules(app, client, login):
    w = _desk(app, login)
    sale = _sell(w).json()["receipt"]
    other = _sell(w, "cashier2", "30.00").json()["receipt"]
    url = "/api/receipts/%d/reverse"
    assert w["cashier"].post(url % sale["id"], json={"reason": "no"}).status_code == 422        # a real reason
    assert w["cashier"].post(url % other["id"], json={"reason": "not mine"}).status_code == 403
    r = w["cashier"].post(url % sale["id"], json={"reason": "typed 50 for 5"})
    assert r.status_code == 201, r.text
    rev = r.json()["receipt"]
    assert (rev["kind"], rev["amount"], rev["method"], rev["reverses_receipt_id"], rev["receipt_no"]) == (
        "reversal", "-50.00", "cash", sale["id"], "R000003")
    entry = [e for e in _entries(app, "reversal")][0]
    assert entry.related_entry_id == sale["ledger_entry_id"] and entry.note == "typed 50 for 5"
    assert w["cashier"].post(url % sale["id"], json={"reason": "again"}).status_code == 409
    assert w["manager"].post(url % rev["id"], json={"reason": "undo"}).status_code == 422        # not a sale
    assert w["cashier"].get("/api/receipts/%d" % sale["id"]).json()["reversed_by_receipt_id"] == rev["id"]
    # after the day end a cashier cannot reverse: a manager does, in the next open day
    day = sale["business_day"]
    assert w["manager"].post("/api/dayend/close", json={"property_id": w["property"], "day": day}).status_code == 200
    assert w["cashier2"].post(url % other["id"], json={"reason": "too late"}).status_code == 403
    late = w["manager"].post(url % other["id"], json={"reason": "tenant came back"})
    assert late.status_code == 201 and late.json()["receipt"]["business_day"] > day
    assert w["manager"].get("/api/accounts/%d" % w["account"]).json()["balance_mu"] == 0
    assert len(_audit(app, "money.reversal")) == 2
    with app.state.session_factory() as s:
        assert ledger.check_cache(s) == []


def test_refunds_and_adjustments(app, client, login):
    w = _desk(app, login)
    _sell(w, amount="40.00")
    acc = "/api/accounts/%d" % w["account"]
    assert w["cashier"].post(acc + "/refund", json={"reason": "moving"}).status_code == 403    # a manager's
    assert w["manager"].post(acc + "/refund", json={"amount": "40.01", "reason": "too much"}).status_code == 422
    assert w["manager"].post(acc + "/adjust", json={"amount": "-5.00"}).status_code == 422     # no reason
    assert w["manager"].post(acc + "/adjust", json={"amount": "0", "reason": "nothing"}).status_code == 422
    adj = w["manager"].post(acc + "/adjust", json={"amount": "-5.00", "reason": "meter read twice in March"})
    assert adj.status_code == 201 and adj.json()["receipt"]["kind"] == "adjustment"
    assert adj.json()["receipt"]["method"] == "" and adj.json()["balance"] == "35.00"
    ref = w["manager"].post(acc + "/refund", json={"reason": "moves out", "method": "transfer"})
    assert ref.status_code == 201 and ref.json()["receipt"]["amount"] == "-35.00" and ref.json()["balance"] == "0.00"
    assert w["manager"].post(acc + "/refund", json={"reason": "again"}).status_code == 422    # nothing left
    for action in ("money.adjustment", "money.refund"):
        rows = _audit(app, action)
        assert len(rows) == 1 and rows[0].username == "manager-han" and rows[0].after["reason"]
    kinds = [e.kind for e in _entries(app)]
    assert kinds == ["recharge", "adjustment", "refund"]
    assert all(e.user_id is not None for e in _entries(app))


def test_day_end_per_method_and_cashier_and_a_closed_day_stays_closed(app, client, login):
    w = _desk(app, login)
    s1 = _sell(w, amount="50.00", method="wechat").json()["receipt"]
    _sell(w, amount="20.00", method="cash")
    _sell(w, "cashier2", amount="100.00", method="alipay")
    w["cashier"].post("/api/receipts/%d/reverse" % s1["id"], json={"reason": "wrong tenant"})
    day = s1["business_day"]
    q = {"property_id": w["property"], "day": day}
    rep = w["manager"].get("/api/dayend", params=q).json()
    assert rep["reconciled"] and rep["problems"] == []
    by_method = {m["method"]: (m["sale"], m["reversal"], m["net"], m["count"]) for m in rep["by_method"]}
    assert by_method == {"wechat": (500000, -500000, 0, 2), "cash": (200000, 0, 200000, 1),
                         "alipay": (1000000, 0, 1000000, 1)}
    assert rep["totals"]["net"] == 1200000 and (rep["first_receipt"], rep["last_receipt"]) == ("R000001", "R000004")
    assert {c["cashier"]: c["net"] for c in rep["by_cashier"]} == {"cashier-mei": 200000, "cashier-zhou": 1000000}
    own = w["cashier"].get("/api/dayend", params=q).json()      # a cashier: their own day
    assert own["cashier"] == "cashier-mei" and own["totals"]["net"] == 200000
    assert [r["receipt_no"] for r in own["receipts"]] == ["R000001", "R000002", "R000004"]
    assert w["cashier"].get("/api/dayend", params=dict(q, cashier_id=rep["by_cashier"][1]["user_id"])).status_code == 404
    assert w["cashier"].post("/api/dayend/close", json={"property_id": w["property"], "day": day}).status_code == 403
    closed = w["manager"].post("/api/dayend/close", json={"property_id": w["property"], "day": day})
    assert closed.status_code == 200 and closed.json()["closed"] and closed.json()["totals"] == rep["totals"]
    assert w["manager"].post("/api/dayend/close", json={"property_id": w["property"], "day": day}).status_code == 409
    assert w["manager"].post("/api/dayend/close", json={"property_id": w["property"],
                                                        "day": "2999-01-01"}).status_code == 422
    later = _sell(w, amount="7.00").json()["receipt"]               # the same afternoon, after the close
    assert later["business_day"] > day
    again = w["manager"].get("/api/dayend", params=q).json()
    assert again["totals"] == rep["totals"] and again["closed"] and again["reconciled"]
    assert len(_audit(app, "money.day_close")) == 1


def test_the_receipt_pdf_in_chinese_and_english(app, client, login, tmp_path):
    w = _desk(app, login)
    rc = _sell(w, amount="88.80", method="wechat").json()["receipt"]
    texts = {}
    for lang in ("zh-CN", "en"):
        r = w["cashier"].get("/api/receipts/%d/pdf" % rc["id"], params={"lang": lang})
        assert r.status_code == 200 and r.content.startswith(b"%PDF")
        (tmp_path / "r.pdf").write_bytes(r.content)
        texts[lang] = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True,
                                     text=True, check=True).stdout
    for lang, words in (("zh-CN", ("售电收据", "微信支付", "租户", "交易后余额")),
                        ("en", ("Sales receipt", "WeChat Pay", "Tenant", "Balance after"))):
        for piece in (rc["receipt_no"], "88.80", "Li Wei", "1-0302", "LT-0302", "cashier-mei") + words:
            assert piece in texts[lang], (lang, piece, texts[lang])


def test_receipt_numbers_stay_gapless_with_concurrent_cashiers(engine):
    """Four cashiers sell at once (some sales refused halfway): the numbers
    are 1..N without a gap or a repeat, on SQLite and PostgreSQL."""
    sf = db.session_factory(engine)
    with sf() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Busy Arcade")
        accs = [accounts.create_account(s, sa, p.id, tenant_name="Shop %d" % k).id for k in range(3)]
        closed = accounts.create_account(s, sa, p.id, tenant_name="Gone")
        closed.status = "closed"
        s.add(closed)
        ids = [create_user(s, sa, "c%d" % k, "password-%d" % k, role="cashier", property_ids=[p.id]).id
               for k in range(4)]
        s.commit()
        pid, closed_id = p.id, closed.id
    errors = []

    def cashier(k):
        # four sales, one to a closed account (refused), one repeated with the same key (sells nothing)
        targets = [accs[k % 3], accs[(k + 1) % 3], accs[(k + 2) % 3], closed_id, accs[k % 3], accs[k % 3]]
        for i, target in enumerate(targets):
            with sf() as s:
                actor = actor_for(s, s.get(User, ids[k]), source="api")
                try:
                    sell(s, actor, target, 10000 + 100 * k, idempotency_key="key-%d-%d" % (k, i % 5), push=False)
                    s.commit()
                except Exception as e:      # the closed account: refused, rolled back
                    s.rollback()
                    errors.append(type(e).__name__)
    threads = [threading.Thread(target=cashier, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(errors) == {"Invalid"} and len(errors) == 4
    with sf() as s:
        numbers = sorted(s.exec(select(Receipt.number).where(Receipt.property_id == pid)).all())
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) == 4 * 4   # a key repeated: one sale
        assert s.exec(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "recharge")).one() == 16
        assert ledger.check_cache(s) == []
        assert receipts.open_day(s, pid)
