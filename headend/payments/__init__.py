"""Payment providers for online top-ups (WeChat Pay, Alipay style), behind
one interface (provider.PaymentProvider); services.payments turns a
verified, confirmed payment into a sale. The fake provider (fake.py) stands
in for the real ones in tests and the demo.

    WK_PAYMENT_PROVIDERS="fake"                       # the fake one (secret WK_PAYMENT_FAKE_SECRET)
    WK_PAYMENT_PROVIDERS="fake,wechat=yourpkg.wechat:WeChatPay"    # a real one plugs in

A plugged-in class is built as Class(settings) and must implement
provider.PaymentProvider (docs/payments.md)."""
import importlib

from .fake import FakeProvider
from .provider import BadNotification, Notification, PaymentProvider  # noqa: F401

BUILT_IN = {"fake": FakeProvider}


def registry(settings):
    """{name: provider} of the configured providers."""
    out = {}
    for item in (settings.payment_providers or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, target = item.partition("=")
        if target:
            module, _, cls = target.partition(":")
            provider_cls = getattr(importlib.import_module(module), cls)
        elif name in BUILT_IN:
            provider_cls = BUILT_IN[name]
        else:
            raise ValueError("unknown payment provider %r (built in: %s; or name=module:Class)"
                             % (name, ", ".join(BUILT_IN)))
        p = provider_cls(settings)
        p.name = name
        out[name] = p
    return out
