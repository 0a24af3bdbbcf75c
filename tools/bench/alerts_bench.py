"""alerts: what alerts cost the ingest, and how fast the worker delivers.

One board with 32 meters on a SQLite file reports a reading per meter every
15 minutes (one message per interval) for 7 simulated days (quick: 2), each
tenant's credit running down so that low-balance forecasts are computed on
every message; the same run again with the alert hook switched off.
Then N relay-opened alerts (quick: 100, full: 500) are delivered by the
notification worker to a local SMTP server (aiosmtpd) and to a local
webhook receiver.

    alerts_ingest_ms_per_message        wall ms per message, alerts on
    alerts_ingest_ms_per_message_off    the same with the alert hook off
    alerts_ingest_overhead_pct          how much the alerts add
    alerts_raised                       alerts the run raised
    notify_email_per_s                  mails delivered per wall second
    notify_webhook_per_s                signed webhooks delivered per wall second
"""
import os
import secrets
import shutil
import tempfile
import time

from concentrator import protocol

METERS = 32
Q = 900
T0 = 1795000000


def _ingest_run(workdir, days, hook_on):
    from sqlmodel import select

    from headend.core import db, migrate
    from headend.ingest import Ingest
    from headend.ingest import service as ingest_service
    from headend.models import Alert
    from headend.services.seed import seed_site
    url = "sqlite:///" + os.path.join(workdir, "ingest-%s.db" % hook_on)
    eng = db.make_engine(url)
    migrate.upgrade(eng)
    sf = db.session_factory(eng)
    key = secrets.token_hex(32)
    with sf() as s:
        seed_site(s, "Bench Court", [{"dev": "b1", "key_hex": key, "meters": [
            {"id": "B-%02d" % i, "model": "sdm120", "opening_energy_wh": 0} for i in range(METERS)]}],
            tariff_price_mu_per_kwh=6000, opening_balance_mu=(10 + 5 * days) * 10000)
    now = [T0]
    ing = Ingest(sf, clock=lambda: now[0])
    saved = ingest_service.alerts.after_ingest
    if not hook_on:
        ingest_service.alerts.after_ingest = lambda *a, **kw: None
    try:
        k = protocol.key_from_hex(key)
        n = seq = 0
        energy = [0] * METERS
        wall = 0.0
        for _ in range(days * 86400 // Q):
            now[0] += Q
            recs = []
            for i in range(METERS):
                energy[i] += (300 + 20 * i) * Q // 3600
                seq += 1
                recs.append([seq, protocol.KIND_READING, i, now[0], [energy[i], 300 + 20 * i, 0]])
            n += 1
            msg = protocol.seal(protocol.message("b1", n, protocol.RECORDS, now[0], recs=recs), k)
            t = time.perf_counter()
            ing.handle(protocol.topic_up("b1"), msg)
            wall += time.perf_counter() - t
        assert ing.stats.get("errors") == 0 and ing.stats.get("rejected") == 0
        with sf() as s:
            raised = len(s.exec(select(Alert)).all())
    finally:
        ingest_service.alerts.after_ingest = saved
        eng.dispose()
    return wall * 1000 / n, raised


def _deliver(workdir, count, channel):
    from sqlmodel import select

    from headend.core import db, migrate
    from headend.models import Notification, Tenant
    from headend.models import alert as K
    from headend.services import alert_rules, alerts, webhooks
    from headend.services.actor import system_actor
    from headend.services.seed import seed_site
    from headend.transport import mail, webhook
    from headend.transport.notifier import Notifier
    from sim.receivers import HttpSink, SmtpSink
    eng = db.make_engine("sqlite:///" + os.path.join(workdir, "notify-%s.db" % channel))
    migrate.upgrade(eng)
    sf = db.session_factory(eng)
    with sf() as s:
        res = seed_site(s, "Notify Bench", [{"dev": "nb", "meters": [{"id": "N-1", "model": "sdm120"}]}],
                        tariff_price_mu_per_kwh=6000)
        m = res["concentrators"]["nb"]["meters"]["N-1"]
        t = s.get(Tenant, m["tenant_id"])
        t.email = "bench@tenants.test" if channel == "email" else ""
        s.add(t)
        s.commit()
    sink = SmtpSink() if channel == "email" else HttpSink()
    with sink:
        with sf() as s:
            if channel == "webhook":
                webhooks.create_webhook(s, system_actor(s), res["property_id"], sink.url)
            rule = alert_rules.rules_for(s, res["property_id"])[K.RELAY_OPENED]
            for i in range(count):
                alerts.raise_alert(s, rule, T0, K.RELAY_OPENED, "bench:%d" % i, res["property_id"],
                                   {"meter": "N-1", "reason": "credit"}, active=True, tenant_id=m["tenant_id"],
                                   account_id=m["account_id"])
            s.commit()
        chan = mail.EmailChannel(sink.url, "bench@wattkeeper.test") if channel == "email" \
            else webhook.WebhookChannel()
        worker = Notifier(sf, {channel: chan}, clock=lambda: T0, batch=100)
        t = time.perf_counter()
        while worker.step():
            pass
        wall = time.perf_counter() - t
        with sf() as s:
            sent = len(s.exec(select(Notification).where(Notification.state == "sent")).all())
        got = len(sink.messages) if channel == "email" else len(sink.requests)
        assert sent == got == count, (sent, got, count)
    eng.dispose()
    return count / wall


def run(quick=False):
    days = 2 if quick else 7
    count = 100 if quick else 500
    workdir = tempfile.mkdtemp(prefix="wk-alerts-bench-")
    try:
        on, raised = _ingest_run(workdir, days, True)
        off, _ = _ingest_run(workdir, days, False)
        return {"alerts_ingest_ms_per_message": on, "alerts_ingest_ms_per_message_off": off,
                "alerts_ingest_overhead_pct": (on - off) * 100 / off, "alerts_raised": raised,
                "notify_email_per_s": _deliver(workdir, count, "email"),
                "notify_webhook_per_s": _deliver(workdir, count, "webhook")}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
