"""Signed webhooks: a POST of the notification's JSON body, byte for byte.

Headers:
    X-Wattkeeper-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>
    X-Wattkeeper-Delivery:  the idempotency key (the same on every retry)
    X-Wattkeeper-Event:     the alert kind

Any 2xx is delivered; 408, 429 and 5xx and network errors are retried with
back-off; other 4xx are permanent. The receiver should drop a delivery id it
has already seen (a crash between the send and its mark retries it).
"""
import hashlib
import hmac

import httpx

from .channels import DeliveryError

SIGNATURE_HEADER = "X-Wattkeeper-Signature"
DELIVERY_HEADER = "X-Wattkeeper-Delivery"
EVENT_HEADER = "X-Wattkeeper-Event"


def signature(secret_hex, body):
    """"sha256=<hex>" over the exact body bytes."""
    return "sha256=" + hmac.new(bytes.fromhex(secret_hex), body, hashlib.sha256).hexdigest()


def verify(secret_hex, body, header):
    """What a receiver does: True when the header signs these bytes."""
    return hmac.compare_digest(signature(secret_hex, body), header or "")


class WebhookChannel:
    name = "webhook"
    at_least_once = True

    def __init__(self, timeout=10.0):
        self.timeout = timeout
        self.client = httpx.Client(timeout=timeout)   # one connection pool (and TLS context) for every send

    def send(self, n, hook=None):
        body = n.body.encode("utf-8")
        if hook is None or not hook.active:
            raise DeliveryError("webhook %s was deleted or disabled" % n.webhook_id, permanent=True)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(hook.secret_hex, body),
                   DELIVERY_HEADER: n.idempotency_key, EVENT_HEADER: n.template,
                   "User-Agent": "Wattkeeper-webhook/1"}
        try:
            r = self.client.post(n.recipient, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryError("webhook unreachable: %s" % (e,))
        if 200 <= r.status_code < 300:
            return r.headers.get("X-Request-Id", "")
        permanent = 400 <= r.status_code < 500 and r.status_code not in (408, 429)
        raise DeliveryError("webhook answered %d" % r.status_code, permanent=permanent)
