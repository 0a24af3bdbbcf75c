"""Response pieces several routers share."""
from typing import Any, Optional

from fastapi.responses import Response
from pydantic import BaseModel

from ...core.money import AmountError, format_exact, format_money, parse_amount
from ...models import LedgerEntryPublic, ReceiptPublic
from ...services import receipts
from ...services.errors import Invalid


class CommandResult(BaseModel):
    event_id: int
    message: Optional[str] = None
    queued: int
    cmd: Optional[dict[str, Any]] = None


def wake_outbox(request):
    """Downlinks were queued: have the MQTT service publish them now."""
    mqtt = getattr(request.app.state, "mqtt", None)
    if mqtt is not None:
        mqtt.wake()


def pdf_response(data, name):
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="%s.pdf"' % name})


class MovementResult(BaseModel):
    entry: LedgerEntryPublic
    receipt: ReceiptPublic
    balance_mu: int
    balance: str
    replayed: bool = False


class SaleResult(MovementResult):
    credits_pushed: int


def entry_public(e, names=None):
    d = e.model_dump()
    d["amount"] = format_exact(e.amount_mu)
    d["username"] = (names or {}).get(e.user_id)
    return LedgerEntryPublic(**d)


def amount_of(text, signed=False):
    try:
        return parse_amount(text, signed=signed, positive=not signed)
    except AmountError as e:
        raise Invalid(str(e))


def movement_result(session, actor, mv, cls=MovementResult, **extra) -> Any:
    e = mv.entry
    return cls(entry=entry_public(e, {e.user_id: actor.username} if e.user_id == actor.user_id else None),
               receipt=receipts.public(session, mv.receipt), balance_mu=e.balance_after_mu,
               balance=format_money(e.balance_after_mu), replayed=mv.replayed, **extra)


def commit_movement(request, session, response, mv):
    """Commit a money movement, wake the outbox; a repeated idempotency key
    answers 200 (the earlier movement, nothing new)."""
    session.commit()
    wake_outbox(request)
    if mv.replayed:
        response.status_code = 200
