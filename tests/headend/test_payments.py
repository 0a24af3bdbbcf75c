"""Online top-ups through the local fake provider (a WeChat Pay style
notification, signed): a confirmed payment becomes one sale however often
the provider repeats it, a replayed notification sells nothing, a forged,
stale or wrong-amount one sells nothing and is said so."""
import time

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from headend.core.config import Settings
from headend.main import create_app
from headend.models import LedgerEntry, PaymentNotice, Receipt
from headend.services import accounts, properties, tariffs
from headend.services.actor import system_actor
from tests.headend.conftest import As, make_user, token_for

SECRET = "test-provider-secret-0123"


@pytest.fixture
def shop(tmp_path):
    app = create_app(Settings(database_url="sqlite:///" + str(tmp_path / "pay.db"), payment_providers="fake",
                              payment_fake_secret=SECRET), start_mqtt=False)
    with app.state.session_factory() as s:
        sa = system_actor(s)
        p = properties.create_property(s, sa, "Online Plaza")
        tariffs.create_tariff(s, sa, p.id, "flat", 6000)
        a = accounts.create_account(s, sa, p.id, tenant_name="Chen Jing")
        b = accounts.create_account(s, sa, p.id, tenant_name="Neighbour")
        s.commit()
        ids = {"property": p.id, "account": a.id, "other": b.id, "tenant": a.tenant_id}
    with TestClient(app) as client:
        make_user(app, "chen", tenant_id=ids["tenant"], password="chen-portal-pw")
        ids["tenant_client"] = As(client, token_for(client, "chen", "chen-portal-pw"))
        ids["client"], ids["app"] = client, app
        ids["provider"] = app.state.payments["fake"]
        yield ids


def _order(shop, amount="30.00", account=None):
    r = shop["tenant_client"].post("/api/portal/accounts/%d/topup" % (account or shop["account"]),
                                   json={"amount": amount})
    return r


def _notify(shop, headers, body):
    return shop["client"].post("/api/payments/fake/notify", headers=headers, content=body)


def _sales(shop):
    with shop["app"].state.session_factory() as s:
        return s.exec(select(LedgerEntry).where(LedgerEntry.kind == "recharge")).all()


def test_a_confirmed_payment_sells_once_whatever_the_provider_repeats(shop):
    r = _order(shop)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "pending" and order["pay"]["code_url"].endswith(order["order_no"])
    headers, body = shop["provider"].pay(order["order_no"], 300000, int(time.time()), txn_id="4200000001")
    first = _notify(shop, headers, body)
    assert first.status_code == 200 and first.json()["code"] == "SUCCESS"
    # the very same notification replayed, and the provider's own retry (new nonce, same transaction)
    assert _notify(shop, headers, body).json()["code"] == "SUCCESS"
    h2, b2 = shop["provider"].pay(order["order_no"], 300000, int(time.time()), txn_id="4200000001")
    assert _notify(shop, h2, b2).json()["code"] == "SUCCESS"
    sales = _sales(shop)
    assert len(sales) == 1 and sales[0].amount_mu == 300000 and sales[0].source == "payment"
    with shop["app"].state.session_factory() as s:
        rc = s.exec(select(Receipt)).one()
        assert (rc.method, rc.reference, rc.source) == ("wechat", "4200000001", "payment")
        outcomes = [n.outcome for n in s.exec(select(PaymentNotice).order_by(PaymentNotice.id))]
        assert outcomes == ["sold", "duplicate"], "the replay is not even recorded again"
    paid = shop["tenant_client"].get("/api/portal/orders/%s" % order["order_no"]).json()
    assert paid["status"] == "paid" and paid["receipt_id"] == rc.id
    assert shop["tenant_client"].get("/api/portal/accounts").json()[0]["balance"] == "30.00"


def test_forged_stale_and_wrong_notifications_sell_nothing(shop):
    order = _order(shop, "20.00").json()
    now = int(time.time())
    headers, body = shop["provider"].pay(order["order_no"], 200000, now, txn_id="4200000002")
    forged = dict(headers, **{"Wk-Pay-Signature": "0" * 64})
    assert _notify(shop, forged, body).status_code == 401
    tampered = body.replace(b"200000", b"900000").replace(b'"total":2000', b'"total":9000')
    assert _notify(shop, headers, tampered).status_code == 401
    old_h, old_b = shop["provider"].pay(order["order_no"], 200000, now - 3600, txn_id="4200000002")
    assert _notify(shop, old_h, old_b).status_code == 400           # an hour old: refused
    wrong_h, wrong_b = shop["provider"].pay(order["order_no"], 100000, now, txn_id="4200000003")
    r = _notify(shop, wrong_h, wrong_b)
    assert r.status_code == 400 and "the order is for 20.00" in r.json()["message"]
    unknown_h, unknown_b = shop["provider"].pay("P1234567890abcdef", 200000, now, txn_id="4200000004")
    assert _notify(shop, unknown_h, unknown_b).status_code == 400
    assert shop["client"].post("/api/payments/fake/notify", content=b"{}").status_code == 401    # unsigned
    assert shop["client"].post("/api/payments/nobody/notify", content=b"{}").status_code == 404
    assert _sales(shop) == []
    # the genuine one still works, and a second transaction for a paid order is refused
    assert _notify(shop, headers, body).json()["code"] == "SUCCESS"
    again_h, again_b = shop["provider"].pay(order["order_no"], 200000, now, txn_id="4200000009")
    assert _notify(shop, again_h, again_b).status_code == 400
    assert len(_sales(shop)) == 1


def test_a_failed_payment_and_a_tenant_cannot_pay_for_another_account(shop):
    order = _order(shop, "10.00").json()
    h, b = shop["provider"].pay(order["order_no"], 100000, int(time.time()), state="PAYERROR")
    assert _notify(shop, h, b).json()["code"] == "SUCCESS"        # acknowledged: the provider stops
    assert shop["tenant_client"].get("/api/portal/orders/%s" % order["order_no"]).json()["status"] == "failed"
    assert _sales(shop) == []
    assert _order(shop, "10.00", account=shop["other"]).status_code == 404
    assert _order(shop, "1e3").status_code == 422
    assert shop["tenant_client"].post("/api/portal/accounts/%d/topup" % shop["account"],
                                      json={"amount": "5.00", "provider": "nobody"}).status_code == 404


def test_the_portal_page_tops_up_and_shows_the_receipt(shop):
    """The tenant's own portal page: online top-up offered (a provider is
    configured), the order shown with where to pay; once the provider confirms,
    the recharge history links the receipt, whose PDF the tenant downloads —
    and nobody else's."""
    import subprocess
    from headend.api.deps import SESSION_COOKIE
    client = shop["client"]
    r = client.post("/login", data={"username": "chen", "password": "chen-portal-pw"}, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, r.cookies[SESSION_COOKIE])
    page = client.get("/portal", headers={"Accept-Language": "en"}).text
    assert "Online top-up is not available" not in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post("/portal/accounts/%d/topup" % shop["account"], data={"amount": "25.00", "csrf_token": token},
                    headers={"Accept-Language": "en"})
    assert r.status_code == 200 and 'class="card topup-order"' in r.text and "25.00" in r.text
    order_no = r.text.split('data-order="')[1].split('"')[0]
    with shop["app"].state.session_factory() as s:
        from headend.models import PaymentOrder
        order = s.exec(select(PaymentOrder).where(PaymentOrder.order_no == order_no)).one()
    headers, body = shop["provider"].pay(order.order_no, order.amount_mu, int(time.time()), txn_id="4200000077")
    assert _notify(shop, headers, body).status_code == 200
    page = client.get("/portal", headers={"Accept-Language": "en"}).text
    link = page.split('class="receipt-link"')[0].rsplit('href="', 1)[1].split('"')[0]
    pdf = client.get(link)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True).stdout.decode()
    assert "25.00" in text
    rid = int(link.split("/")[-1].split(".")[0])
    # someone else's receipt: 404, like one that does not exist
    with shop["app"].state.session_factory() as s:
        from headend.services.sales import sell
        other = sell(s, system_actor(s), shop["other"], 10000, push=False)
        s.commit()
        other_id = other.receipt.id
    assert client.get("/portal/receipts/%d.pdf" % other_id).status_code == 404
    assert client.get("/portal/receipts/%d.pdf" % (other_id + 100)).status_code == 404
    api = shop["tenant_client"]
    assert api.get("/api/portal/receipts/%d/pdf" % rid).status_code == 200
    assert api.get("/api/portal/receipts/%d/pdf" % other_id).status_code == 404
