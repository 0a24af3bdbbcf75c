"""Online top-ups: a tenant opens a payment order; the provider's signed
notification turns it into a sale (docs/payments.md)."""
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from ...core import permissions as P
from ...models.payment import PaymentOrderPublic, TopUpIn
from ...payments import BadNotification
from ...services import payments
from ...services.actor import Actor
from ...services.errors import Invalid, NotFound
from ..deps import Id, SessionDep, public, require
from .common import amount_of, wake_outbox

router = APIRouter(tags=["payments"])
MAX_NOTIFICATION = 64 * 1024
Provider = Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,16}$")]


def _provider(request, name):
    p = request.app.state.payments.get(name)
    if p is None:
        raise NotFound("no payment provider %r" % name)
    return p


@router.post("/api/portal/accounts/{account_id}/topup", response_model=PaymentOrderPublic, status_code=201)
def top_up(account_id: Id, body: TopUpIn, request: Request, session: SessionDep,
           actor: Annotated[Actor, require(P.PORTAL)]):
    """Open a payment order for one of your accounts; `pay` holds what your
    payment app needs (e.g. a QR code URL). The credit arrives when the
    provider confirms the payment."""
    order = payments.open_order(session, actor, account_id, amount_of(body.amount), _provider(request, body.provider))
    session.commit()
    return payments.public(order)


@router.get("/api/portal/orders/{order_no}", response_model=PaymentOrderPublic)
def get_order(order_no: Annotated[str, Path(pattern=r"^P[0-9a-f]{8,31}$")], session: SessionDep,
              actor: Annotated[Actor, require(P.PORTAL)]):
    """A payment order of yours: pending, paid (receipt_id) or failed."""
    return payments.public(payments.get_order(session, actor, order_no))


@router.post("/api/payments/{provider}/notify", response_class=Response, dependencies=[public()])
async def notify(provider: Provider, request: Request, session: SessionDep):
    """The provider's payment notification (signed; see docs/payments.md).
    A confirmed payment of the order's amount becomes a sale once: a
    repeated or replayed notification answers success and sells nothing."""
    p = _provider(request, provider)
    body = await request.body()
    if len(body) > MAX_NOTIFICATION:
        raise Invalid("notification too large")
    try:
        note = p.verify({k.lower(): v for k, v in request.headers.items()}, body, payments.now())
    except BadNotification as e:
        _status, content, media = p.answer(False, e.reason)
        return Response(content, status_code=e.status, media_type=media)
    outcome, detail, _order = payments.notify(session, p, note)
    session.commit()
    wake_outbox(request)
    ok = outcome in (payments.SOLD, payments.DUPLICATE, payments.NOT_PAID, payments.NOT_CREDITED)
    status, content, media = p.answer(ok, detail)
    return Response(content, status_code=status, media_type=media)
