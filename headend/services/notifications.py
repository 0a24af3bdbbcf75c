"""The notification outbox: who hears of an alert, on which channel, in which
words. queue_for_alert() adds the Notification rows in the caller's
transaction (the one that raised the alert), so an alert and its deliveries
are stored together or not at all; transport/notifier.py sends them.

Each notification's text is rendered here, once: a retry sends the very same
bytes (the webhook signature stays valid, the e-mail keeps its Message-ID).
"""
import hashlib
import json

from sqlmodel import select

from ..core.money import format_local
from ..models import Notification, Property, Tenant, Webhook
from ..models import alert as K
from . import alert_rules, messages

DAY = 86400


def idempotency_key(alert_id, channel, recipient):
    """Stable per (alert, channel, recipient): the outbox's unique key, the
    e-mail's Message-ID, the webhook's delivery id, the SMS reference."""
    h = hashlib.sha256(recipient.encode("utf-8", "replace")).hexdigest()[:16]
    return "wk-a%d-%s-%s" % (alert_id, channel, h)


def quiet_until(now, pref, tz_offset_s):
    """The end of the tenant's quiet hours when `now` falls inside them, else now."""
    a, b = pref.quiet_start_min, pref.quiet_end_min
    if a is None or b is None or a == b:
        return now
    local = now + tz_offset_s
    minute = (local % DAY) // 60
    inside = (a <= minute < b) if a < b else (minute >= a or minute < b)
    if not inside:
        return now
    day_start = local - local % DAY
    end = day_start + b * 60
    if end <= local:
        end += DAY
    return end - tz_offset_s


def tenant_params(alert, tenant, site, tz_offset_s):
    p = dict(alert.values)
    p.update(site=site, name=tenant.name)
    if alert.event_ts:
        p["time"] = format_local(alert.event_ts, tz_offset_s, seconds=False)
    return p


def tenant_template(alert):
    if alert.kind == K.LOW_BALANCE:
        return "low_balance_days" if alert.values.get("days") else "low_balance"
    return messages.TENANT_TEMPLATE[alert.kind]


def webhook_body(alert, site):
    """The exact JSON a webhook receives (signed as these bytes)."""
    return json.dumps({"alert_id": alert.id, "kind": alert.kind, "property_id": alert.property_id,
                       "property": site, "subject": alert.subject, "account_id": alert.account_id,
                       "concentrator_id": alert.concentrator_id, "meter_id": alert.meter_id,
                       "ts": alert.ts, "event_ts": alert.event_ts, "values": alert.values,
                       "message": alert.message}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def queue_for_alert(session, alert, rule, now):
    """Add the notifications of a new alert (flushed alert: it has an id).
    -> the rows added."""
    prop = session.get(Property, alert.property_id)
    site, tz = prop.name, prop.tz_offset_s
    rows = []

    def add(channel, recipient, **kw):
        rows.append(Notification(alert_id=alert.id, channel=channel, recipient=recipient, created=now,
                                 idempotency_key=idempotency_key(alert.id, channel, recipient),
                                 next_attempt=now, **kw))

    if rule.notify_tenant and alert.tenant_id and alert.kind in alert_rules.TENANT_KINDS:
        tenant = session.get(Tenant, alert.tenant_id)
        pref = alert_rules.preference(session, tenant)
        lang = messages.pick_language(pref.language or alert_rules.DEFAULT_LANGUAGE)
        template = tenant_template(alert)
        params = tenant_params(alert, tenant, site, tz)
        subject, text = messages.render(template, lang, params)
        not_before = now if alert.kind in alert_rules.URGENT_KINDS else quiet_until(now, pref, tz)
        for channel in pref.channels:
            addr = tenant.phone if channel == K.SMS else tenant.email if channel == K.EMAIL else ""
            if addr:
                add(channel, addr, language=lang, template=template, params=params, subject=subject, body=text,
                    not_before=not_before)
    staff = alert_rules.staff_emails(rule)
    if staff:
        subject, text = messages.staff_text(alert.kind, alert.values, site)
        for addr in staff:
            add(K.EMAIL, addr, language="zh-CN", template="staff", params=alert.values, subject=subject,
                body=text)
    hooks = session.exec(select(Webhook).where(Webhook.property_id == alert.property_id,
                                               Webhook.active.is_(True)).order_by(Webhook.id)).all()
    body = None
    for h in hooks:
        if h.kinds and alert.kind not in h.kinds:
            continue
        body = body or webhook_body(alert, site)
        add(K.WEBHOOK, h.url, webhook_id=h.id, template=alert.kind, subject=alert.kind, body=body,
            language="en")
    session.add_all(rows)
    return rows
