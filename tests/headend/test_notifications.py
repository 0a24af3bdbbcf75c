"""The notification outbox and its worker against real local receivers
(issue 12, check 1): an SMTP server (aiosmtpd) down for an hour of simulated
time loses nothing and delivers each mail once; a webhook receiver answering
500 three times gets the alert on the fourth try, signed; a crash between a
send and its mark sends an e-mail at most once and a webhook again under the
same delivery id; SMS go out as registered templates in Chinese and English
and wait for the end of the tenant's quiet hours."""
import json

import pytest
from sqlmodel import select

from headend.core import db
from headend.models import Alert, DeliveryAttempt, Notification, Tenant
from headend.models import alert as K
from headend.services import alert_rules, alerts, users, webhooks
from headend.services.actor import system_actor
from headend.services.seed import seed_site
from headend.transport import webhook as wh
from headend.transport.mail import EmailChannel
from headend.transport.notifier import Notifier
from headend.transport.sms import GenericHttpProvider, SmsChannel
from sim.receivers import HttpSink, SimClock, SmtpSink

HOUR = 3600


class FakeSmsProvider:
    """Only in tests: an SMS gateway cannot run here. Records what it is asked."""

    def __init__(self):
        self.sent = []

    def send(self, phone, template, template_id, params, text, language, reference):
        self.sent.append(dict(phone=phone, template=template, template_id=template_id, params=params, text=text,
                              language=language, reference=reference))
        return "fake-%d" % len(self.sent)


def make_world(engine, tenants=3, email=True, phone=False):
    sf = db.session_factory(engine)
    meters = [{"id": "N-%d" % i, "model": "sdm120"} for i in range(tenants)]
    with sf() as s:
        seeded = seed_site(s, "Notify Court", [{"dev": "nc1", "meters": meters}], tariff_price_mu_per_kwh=6000)
        for i, mid in enumerate(sorted(seeded["concentrators"]["nc1"]["meters"])):
            t = s.get(Tenant, seeded["concentrators"]["nc1"]["meters"][mid]["tenant_id"])
            t.email = "tenant%d@example.test" % i if email else ""
            t.phone = "1380000000%d" % i if phone else ""
            s.add(t)
        s.commit()
    return sf, seeded


def relay_alerts(sf, seeded, now):
    """A relay-opened alert for every tenant of the world, as the ingest raises them."""
    out = []
    with sf() as s:
        rule = alert_rules.rules_for(s, seeded["property_id"])[K.RELAY_OPENED]
        for mid, m in sorted(seeded["concentrators"]["nc1"]["meters"].items()):
            a = alerts.raise_alert(s, rule, now, K.RELAY_OPENED, "meter:%d" % m["id"], seeded["property_id"],
                                   {"meter": mid, "reason": "credit", "name": "Tenant " + mid, "balance": "0.00"},
                                   active=True, account_id=m["account_id"], tenant_id=m["tenant_id"],
                                   meter_id=m["id"], event_ts=now)
            out.append(a.id)
        s.commit()
    return out


def states(sf):
    with sf() as s:
        return sorted(n.state for n in s.exec(select(Notification)).all())


def test_smtp_down_for_an_hour_loses_nothing_and_sends_once(engine):
    sf, seeded = make_world(engine, tenants=3)
    clock = SimClock()
    sink = SmtpSink()
    worker = Notifier(sf, {"email": EmailChannel(sink.url, "Wattkeeper <wk@example.test>", timeout=5)}, clock=clock)
    relay_alerts(sf, seeded, clock())
    assert states(sf) == ["pending"] * 3
    # the SMTP server is down for an hour: every try fails, nothing is lost
    while clock.t < 1796000000 + HOUR:
        assert worker.step() == 0
        clock.advance(30)
    assert states(sf) == ["pending"] * 3
    with sf() as s:
        tries = s.exec(select(DeliveryAttempt)).all()
        assert len(tries) >= 3 * 8 and all(t.outcome == "error" for t in tries)
        assert "unreachable" in tries[0].detail
        first = s.exec(select(Notification)).first()
        assert first.next_attempt - clock() <= 600      # back-off capped at 10 minutes
    with sink:
        for _ in range(40):                       # 20 simulated minutes
            worker.step()
            clock.advance(30)
    assert states(sf) == ["sent"] * 3
    ids = sink.ids()
    assert len(ids) == 3 and len(set(ids)) == 3, ids      # each mail exactly once
    got = {m["to"][0]: m for m in sink.messages}
    assert sorted(got) == ["tenant0@example.test", "tenant1@example.test", "tenant2@example.test"]
    m = got["tenant1@example.test"]
    assert m["subject"] == "已断电通知" and "N-1" in m["body"] and "余额不足" in m["body"]   # Chinese by default
    with sf() as s:
        for n in s.exec(select(Notification)).all():
            tries = s.exec(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == n.id)
                           .order_by(DeliveryAttempt.n)).all()
            assert len(tries) == n.attempts and [t.outcome for t in tries][-1] == "ok"
            assert [t.outcome for t in tries[:-1]] == ["error"] * (n.attempts - 1)
            assert "<%s@wattkeeper>" % n.idempotency_key in ids


def test_webhook_500_three_times_then_delivered_on_the_fourth_try_signed(engine):
    sf, seeded = make_world(engine, tenants=1, email=False)
    clock = SimClock()
    with sf() as s:
        hook = webhooks.create_webhook(s, system_actor(s), seeded["property_id"], "http://127.0.0.1/x",
                                       kinds=[K.RELAY_OPENED], description="ops")
        secret, hook_id = hook.secret_hex, hook.id
        s.commit()
    with HttpSink(statuses=(500, 500, 500, 200)) as rx:
        with sf() as s:
            h = s.get(type(hook), hook_id)
            h.url = rx.url
            s.add(h)
            s.commit()
        worker = Notifier(sf, {"webhook": wh.WebhookChannel(timeout=5)}, clock=clock)
        [alert_id] = relay_alerts(sf, seeded, clock())
        for _ in range(20):
            worker.step()
            clock.advance(30)
        assert len(rx.requests) == 4
        with sf() as s:
            n = s.exec(select(Notification)).one()
            assert n.state == "sent" and n.attempts == 4
            tries = s.exec(select(DeliveryAttempt).order_by(DeliveryAttempt.n)).all()
            assert [t.outcome for t in tries] == ["error", "error", "error", "ok"]
            assert "500" in tries[0].detail
            # back-off: 30 s, 60 s, 120 s between the tries
            assert [b.started - a.started for a, b in zip(tries, tries[1:])] == [30, 60, 120]
    bodies = {r["body"] for r in rx.requests}
    assert len(bodies) == 1                          # the very same bytes every time
    body = rx.requests[-1]["body"]
    for r in rx.requests:
        assert wh.verify(secret, r["body"], r["headers"][wh.SIGNATURE_HEADER])
        assert r["headers"][wh.DELIVERY_HEADER] == n.idempotency_key
    assert not wh.verify(secret, body + b" ", rx.requests[-1]["headers"][wh.SIGNATURE_HEADER])
    assert not wh.verify("00" * 32, body, rx.requests[-1]["headers"][wh.SIGNATURE_HEADER])
    doc = json.loads(body)
    assert doc["alert_id"] == alert_id and doc["kind"] == "relay_opened" and doc["values"]["meter"] == "N-0"


def test_a_crash_between_send_and_mark(engine, monkeypatch):
    """E-mail: marked uncertain, never sent twice. Webhook: sent again under
    the same delivery id (the receiver drops the repeat)."""
    sf, seeded = make_world(engine, tenants=1)
    clock = SimClock()
    with sf() as s:
        webhooks.create_webhook(s, system_actor(s), seeded["property_id"], "http://127.0.0.1/x")
        s.commit()
    with SmtpSink() as sink, HttpSink() as rx:
        with sf() as s:
            from headend.models import Webhook
            h = s.exec(select(Webhook)).one()
            h.url = rx.url
            s.add(h)
            s.commit()
        chans = {"email": EmailChannel(sink.url, "wk@example.test"), "webhook": wh.WebhookChannel()}
        relay_alerts(sf, seeded, clock())
        dying = Notifier(sf, chans, clock=clock)

        class Died(BaseException):
            pass

        def die(*a, **kw):
            raise Died()
        monkeypatch.setattr(dying, "_finish", die)
        for _ in range(2):
            with pytest.raises(Died):
                dying.step()
        assert len(sink.messages) == 1 and len(rx.requests) == 1
        assert states(sf) == ["sending", "sending"]
        clock.advance(400)                          # past the lease: a new worker takes over
        fresh = Notifier(sf, chans, clock=clock)
        for _ in range(4):
            fresh.step()
            clock.advance(30)
        with sf() as s:
            by = {n.channel: n for n in s.exec(select(Notification)).all()}
        assert by["email"].state == "uncertain" and len(sink.messages) == 1
        assert by["webhook"].state == "sent" and len(rx.requests) == 2
        assert rx.requests[0]["headers"][wh.DELIVERY_HEADER] == rx.requests[1]["headers"][wh.DELIVERY_HEADER]
        with sf() as s:
            crashed = s.exec(select(DeliveryAttempt).where(DeliveryAttempt.outcome == "crashed")).all()
            assert len(crashed) == 2


def test_sms_templates_in_both_languages_and_quiet_hours(tmp_path):
    eng = db.make_engine("sqlite:///" + str(tmp_path / "sms.db"))
    from headend.core import migrate
    migrate.upgrade(eng)
    sf, seeded = make_world(eng, tenants=2, email=False, phone=True)
    fake = FakeSmsProvider()
    clock = SimClock(1795102200)     # 2026-11-19 15:30 UTC = 23:30 local (UTC+8): quiet hours 22:00-07:00
    with sf() as s:
        meters = seeded["concentrators"]["nc1"]["meters"]
        u = users.create_user(s, system_actor(s), "sms-tenant", "sms-tenant-pw", tenant_id=meters["N-1"]["tenant_id"])
        alert_rules.update_preference(s, users.actor_for(s, u),
                                      {"language": "en", "quiet_start": "22:00", "quiet_end": "07:00"})
        rule = alert_rules.rules_for(s, seeded["property_id"])[K.LOW_BALANCE]
        for mid in ("N-0", "N-1"):
            m = meters[mid]
            alerts.raise_alert(s, rule, clock(), K.LOW_BALANCE, "account:%d" % m["account_id"], seeded["property_id"],
                               {"name": "Tenant " + mid, "balance": "8.40", "days": "1.5"}, active=True,
                               account_id=m["account_id"], tenant_id=m["tenant_id"])
        s.commit()
    worker = Notifier(sf, {"sms": SmsChannel(fake, {"low_balance_days": "SMS_900001"})}, clock=clock)
    worker.step()
    assert [x["phone"] for x in fake.sent] == ["13800000000"]       # the other one is asleep
    zh = fake.sent[0]
    assert zh["template_id"] == "SMS_900001" and zh["params"]["balance"] == "8.40" and zh["params"]["days"] == "1.5"
    assert zh["language"] == "zh-CN" and "约可用1.5天" in zh["text"] and zh["text"].startswith("【Notify Court】")
    clock.advance(7 * 3600)                                          # 06:30: still quiet
    worker.step()
    assert len(fake.sent) == 1
    clock.advance(31 * 60)                                           # 07:01
    worker.step()
    assert len(fake.sent) == 2
    en = fake.sent[1]
    assert en["language"] == "en" and "about 1.5 days" in en["text"] and en["reference"].startswith("wk-a")


def test_generic_http_sms_provider_posts_the_template(engine):
    with HttpSink(statuses=(503, 200), reply={"id": "gw-17"}) as gw:
        p = GenericHttpProvider(gw.url, token="t0ken", timeout=5)
        from headend.transport.channels import DeliveryError
        with pytest.raises(DeliveryError) as e:
            p.send("13800000000", "relay_opened", "SMS_1", {"meter": "A-1"}, "text", "zh-CN", "ref-1")
        assert not e.value.permanent
        assert p.send("13800000000", "relay_opened", "SMS_1", {"meter": "A-1"}, "text", "zh-CN", "ref-1") == "gw-17"
        sent = json.loads(gw.requests[1]["body"])
        assert sent == {"to": "13800000000", "template": "relay_opened", "template_id": "SMS_1",
                        "params": {"meter": "A-1"}, "text": "text", "language": "zh-CN", "reference": "ref-1"}
        assert gw.requests[1]["headers"]["Authorization"] == "Bearer t0ken"


def test_an_alert_and_its_notifications_are_one_transaction(engine):
    sf, seeded = make_world(engine, tenants=1)
    with sf() as s:
        rule = alert_rules.rules_for(s, seeded["property_id"])[K.RELAY_OPENED]
        m = seeded["concentrators"]["nc1"]["meters"]["N-0"]
        alerts.raise_alert(s, rule, 1, K.RELAY_OPENED, "meter:%d" % m["id"], seeded["property_id"], {"meter": "N-0"},
                           active=True, tenant_id=m["tenant_id"], account_id=m["account_id"])
        s.rollback()
    with sf() as s:
        assert s.exec(select(Alert)).all() == [] and s.exec(select(Notification)).all() == []
