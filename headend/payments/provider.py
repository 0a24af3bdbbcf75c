"""The interface a payment provider implements (docs/payments.md).

A payment goes: the tenant asks for a top-up -> the head-end opens a
PaymentOrder and asks the provider what the payer needs (create) -> the
payer pays in the provider's app -> the provider calls
POST /api/payments/{name}/notify -> verify() checks the signature and the
time and says what happened -> a confirmed payment of the order's amount
becomes a sale (once, whatever the provider repeats) -> answer() is what the
provider expects back (it retries until it gets a success)."""

NOTIFY_WINDOW_S = 300      # a notification older (or newer) than this is refused: replays stay out


class BadNotification(Exception):
    """Not a genuine, fresh notification: wrong or missing signature (401),
    too old or malformed (400)."""

    def __init__(self, reason, status=400):
        Exception.__init__(self, reason)
        self.reason = reason
        self.status = status


class Notification:
    """What a verified notification says."""

    def __init__(self, order_no, provider_txn_id, amount_mu, paid, nonce, ts, detail=""):
        self.order_no = order_no
        self.provider_txn_id = provider_txn_id
        self.amount_mu = amount_mu
        self.paid = paid
        self.nonce = nonce
        self.ts = ts
        self.detail = detail


class PaymentProvider:
    name = "provider"
    method = "wechat"            # the receipt's payment method for its sales

    def __init__(self, settings):
        self.settings = settings

    def create(self, order):
        """-> dict the payer's app needs (a QR code URL, a prepay id...),
        stored on the order and shown to the tenant."""
        raise NotImplementedError

    def verify(self, headers, body, now):
        """headers (lower-case names), the raw body bytes, now (Unix s) ->
        Notification, or raise BadNotification."""
        raise NotImplementedError

    def answer(self, ok, message=""):
        """-> (HTTP status, body bytes, media type) the provider expects."""
        raise NotImplementedError
