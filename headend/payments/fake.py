"""A local stand-in for a WeChat Pay style provider (API v3 shape): the
notification is JSON {"out_trade_no", "transaction_id", "trade_state",
"amount": {"total": fen}} with the headers Wk-Pay-Timestamp, Wk-Pay-Nonce
and Wk-Pay-Signature = hex HMAC-SHA256(secret, timestamp "\\n" nonce "\\n"
body "\\n"). The real WeChat Pay signs the same three parts with RSA and
encrypts the resource; Alipay signs form fields with RSA2: each is a
provider class of its own with the same interface.

pay() makes the notification a provider would send when the payer pays:
what the tests (and a demo) use."""
import hashlib
import hmac
import json
import secrets

from ..core.money import MU_PER_CENT
from .provider import NOTIFY_WINDOW_S, BadNotification, Notification, PaymentProvider

TS, NONCE, SIGNATURE = "wk-pay-timestamp", "wk-pay-nonce", "wk-pay-signature"


class FakeProvider(PaymentProvider):
    name = "fake"
    method = "wechat"

    def __init__(self, settings):
        PaymentProvider.__init__(self, settings)
        self.secret = (getattr(settings, "payment_fake_secret", "") or "").encode()
        if len(self.secret) < 16:
            raise ValueError("the fake payment provider needs WK_PAYMENT_FAKE_SECRET (16 characters or more)")

    def _sign(self, ts, nonce, body):
        return hmac.new(self.secret, b"%s\n%s\n%s\n" % (str(ts).encode(), nonce.encode(), body),
                        hashlib.sha256).hexdigest()

    def create(self, order):
        return {"code_url": "weixin://wxpay/fake/%s" % order.order_no, "provider": self.name}

    def pay(self, order_no, amount_mu, now, txn_id=None, state="SUCCESS", nonce=None):
        """-> (headers, body bytes) of the provider's notification."""
        body = json.dumps({"out_trade_no": order_no, "transaction_id": txn_id or "4200" + secrets.token_hex(12),
                           "trade_state": state, "amount": {"total": amount_mu // MU_PER_CENT}},
                          separators=(",", ":")).encode()
        nonce = nonce or secrets.token_hex(16)
        return {"Wk-Pay-Timestamp": str(now), "Wk-Pay-Nonce": nonce,
                "Wk-Pay-Signature": self._sign(now, nonce, body), "Content-Type": "application/json"}, body

    def verify(self, headers, body, now):
        ts, nonce, sig = headers.get(TS, ""), headers.get(NONCE, ""), headers.get(SIGNATURE, "")
        if not (ts.isdigit() and 8 <= len(nonce) <= 64 and len(sig) == 64):
            raise BadNotification("missing or malformed signature headers", 401)
        if not hmac.compare_digest(sig.lower(), self._sign(int(ts), nonce, body)):
            raise BadNotification("signature does not verify", 401)
        if abs(now - int(ts)) > NOTIFY_WINDOW_S:
            raise BadNotification("notification timestamp %s is more than %d s from now" % (ts, NOTIFY_WINDOW_S))
        try:
            d = json.loads(body)
            order_no, txn = d["out_trade_no"], d["transaction_id"]
            fen = d["amount"]["total"]
            state = d["trade_state"]
        except (ValueError, KeyError, TypeError):
            raise BadNotification("not a payment notification")
        if not (isinstance(order_no, str) and isinstance(txn, str) and 1 <= len(txn) <= 55
                and isinstance(fen, int) and not isinstance(fen, bool) and fen > 0 and isinstance(state, str)):
            raise BadNotification("fields missing or invalid")
        return Notification(order_no[:32], txn, fen * MU_PER_CENT, state == "SUCCESS", nonce, int(ts), detail=state)

    def answer(self, ok, message=""):
        body = {"code": "SUCCESS", "message": "OK"} if ok else {"code": "FAIL", "message": message[:200]}
        return (200 if ok else 400), json.dumps(body).encode(), "application/json"
