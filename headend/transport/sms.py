"""SMS through a provider, behind one small interface.

Chinese SMS providers send only templates registered with them (a template
id, a signature and named parameters); so do we: every message is one of
services/messages.TEMPLATES, and the provider gets

    provider.send(phone, template, template_id, params, text, language, reference) -> provider message id

    phone        the tenant's number as stored
    template     our template name ("low_balance_days", "relay_opened", ...)
    template_id  the provider's id for it (WK_SMS_TEMPLATES maps ours to theirs;
                 our name when not mapped)
    params       {name: str} the template's parameters
    text         the rendered text (for providers that take free text)
    language     "zh-CN" or "en"
    reference    the idempotency key: providers that accept a client
                 reference drop a repeat
and raises channels.DeliveryError (permanent=True when retrying cannot help).

GenericHttpProvider (WK_SMS_PROVIDER=http, the default) POSTs that as JSON
to WK_SMS_URL with "Authorization: Bearer WK_SMS_TOKEN". Another provider
(an Aliyun or Tencent Cloud SDK, a local gateway) plugs in as
WK_SMS_PROVIDER=package.module:factory, where factory(settings) returns an
object with that send().
"""
import importlib
import json

import httpx

from .channels import DeliveryError


class GenericHttpProvider:
    def __init__(self, url, token="", timeout=10.0):
        self.url = url
        self.token = token
        self.client = httpx.Client(timeout=timeout)

    def send(self, phone, template, template_id, params, text, language, reference):
        headers = {"Authorization": "Bearer " + self.token} if self.token else {}
        payload = {"to": phone, "template": template, "template_id": template_id,
                   "params": {k: str(v) for k, v in params.items()}, "text": text, "language": language,
                   "reference": reference}
        try:
            r = self.client.post(self.url, json=payload, headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryError("SMS provider unreachable: %s" % (e,))
        if 200 <= r.status_code < 300:
            try:
                return str(r.json().get("id", ""))
            except ValueError:
                return ""
        raise DeliveryError("SMS provider answered %d: %s" % (r.status_code, r.text[:200]),
                            permanent=400 <= r.status_code < 500 and r.status_code not in (408, 429))


def provider_from_settings(settings):
    """The configured provider, or None (no SMS)."""
    name = settings.sms_provider or "http"
    if name == "http":
        return GenericHttpProvider(settings.sms_url, settings.sms_token, settings.notify_timeout_s) \
            if settings.sms_url else None
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr or "provider")(settings)


def template_ids(settings):
    if not settings.sms_templates:
        return {}
    ids = json.loads(settings.sms_templates)
    if not isinstance(ids, dict):
        raise ValueError("WK_SMS_TEMPLATES must be a JSON object")
    return {str(k): str(v) for k, v in ids.items()}


class SmsChannel:
    name = "sms"
    at_least_once = False

    def __init__(self, provider, template_ids=None):
        self.provider = provider
        self.template_ids = template_ids or {}

    def send(self, n, hook=None):
        params = {k: v for k, v in n.params.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
        return self.provider.send(n.recipient, n.template, self.template_ids.get(n.template, n.template), params,
                                  n.body, n.language, n.idempotency_key) or ""
