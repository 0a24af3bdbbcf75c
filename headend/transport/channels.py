"""Delivery channels of the notification worker: e-mail (transport/mail.py),
webhooks (transport/webhook.py), SMS (transport/sms.py).

A channel is an object with

    name            "email", "webhook" or "sms"
    at_least_once   True: after a crash between sending and marking sent,
                    the notification is sent again with the same idempotency
                    key (the receiver drops the repeat); False: it is marked
                    "uncertain" and never sent again (a person could get it twice)
    send(n, hook)   send Notification n (hook: its Webhook row, webhooks only);
                    -> the provider's id ("" if none); raise DeliveryError
                    (permanent=True: retrying cannot help)

build(settings) makes the channels the settings configure.
"""


class DeliveryError(Exception):
    def __init__(self, message, permanent=False):
        Exception.__init__(self, message)
        self.message = message
        self.permanent = permanent


def build(settings):
    """{channel name: channel} for what the settings configure (webhooks
    always; e-mail with WK_SMTP_URL; SMS with WK_SMS_URL or another provider)."""
    from . import mail, sms, webhook
    out = {"webhook": webhook.WebhookChannel(timeout=settings.notify_timeout_s)}
    if settings.smtp_url:
        out["email"] = mail.EmailChannel(settings.smtp_url, settings.smtp_from, timeout=settings.notify_timeout_s)
    provider = sms.provider_from_settings(settings)
    if provider is not None:
        out["sms"] = sms.SmsChannel(provider, sms.template_ids(settings))
    return out
