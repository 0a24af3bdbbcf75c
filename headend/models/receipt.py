"""Receipts: the numbered money documents of the sales desk. One per sale
(收据), reversal (冲正单), refund (退费单) or adjustment (调账单), each
linked to the ledger entry it documents. Numbers are per property and
sequential without gaps: ReceiptCounter is advanced in the transaction of
the money movement, so a sale that rolls back takes no number.

A receipt keeps what was printed on it (tenant, units, meters, balance
after), so that a reprint years later shows the same text."""
from typing import Optional

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, big, now_s

SALE, REVERSAL, REFUND, ADJUSTMENT = "sale", "reversal", "refund", "adjustment"
RECEIPT_KINDS = (SALE, REVERSAL, REFUND, ADJUSTMENT)

# how the money was paid (or paid back)
CASH, WECHAT, ALIPAY, CARD, TRANSFER = "cash", "wechat", "alipay", "card", "transfer"
METHODS = (CASH, WECHAT, ALIPAY, CARD, TRANSFER)
NO_METHOD = ""            # an adjustment moves no money in or out of the drawer
METHOD_TEXT = {CASH: "cash", WECHAT: "WeChat Pay", ALIPAY: "Alipay", CARD: "bank card", TRANSFER: "transfer",
               NO_METHOD: "no payment"}
METHOD_PATTERN = r"^(cash|wechat|alipay|card|transfer)$"
IDEMPOTENCY_PATTERN = r"^[A-Za-z0-9_.:-]{8,64}$"


class ReceiptCounter(SQLModel, table=True):
    """The last receipt number given in a property (row-locked by every
    numbered movement and by the day end, so both serialise per property)."""
    __tablename__ = "receipt_counter"
    property_id: int = Field(foreign_key="property.id", primary_key=True)
    last_number: int = big(default=0)


class Receipt(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("property_id", "number", name="uq_receipt_number"),
                      UniqueConstraint("property_id", "idempotency_key", name="uq_receipt_idempotency"),
                      UniqueConstraint("ledger_entry_id", name="uq_receipt_ledger_entry"),
                      # a sale is reversed at most once
                      UniqueConstraint("reverses_receipt_id", name="uq_receipt_reverses"))
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    number: int = big()                                   # 1, 2, 3, ... per property
    kind: str = Field(max_length=16)                      # one of RECEIPT_KINDS
    account_id: int = Field(foreign_key="account.id", index=True)
    ledger_entry_id: int = Field(foreign_key="ledger_entry.id")
    amount_mu: int = big()                                # signed, as the ledger entry
    method: str = Field(default=CASH, max_length=16)      # one of METHODS, or NO_METHOD
    reference: str = Field(default="", max_length=100)    # the payment's own reference (WeChat, bank)
    reason: str = Field(default="", max_length=500)       # why (reversal, refund, adjustment)
    reverses_receipt_id: Optional[int] = Field(default=None, foreign_key="receipt.id")   # the sale a reversal cancels
    user_id: int = Field(foreign_key="app_user.id", index=True)    # who took or paid the money
    source: str = Field(default="desk", max_length=16)    # desk, api, cli, payment
    business_day: str = Field(max_length=10, index=True)  # the open day it counts in (YYYY-MM-DD, local)
    created: int = big(default_factory=now_s)
    idempotency_key: Optional[str] = Field(default=None, max_length=64)
    # what the receipt shows, as it was at the time
    tenant_name: str = Field(default="", max_length=200)
    unit_names: str = Field(default="", max_length=300)
    meter_ids: str = Field(default="", max_length=300)
    balance_after_mu: int = big(default=0)


class ReceiptPublic(SQLModel):
    id: int
    property_id: int
    number: int
    receipt_no: str
    kind: str
    account_id: int
    ledger_entry_id: int
    amount_mu: int
    amount: str
    method: str
    reference: str
    reason: str
    reverses_receipt_id: Optional[int]
    reversed_by_receipt_id: Optional[int] = None
    user_id: int
    cashier: str = ""
    source: str
    business_day: str
    created: int
    tenant_name: str
    unit_names: str
    meter_ids: str
    balance_after_mu: int
    balance_after: str


# ------------------------------------------------------------------ bodies
class SaleIn(Body):
    amount: str = Field(max_length=24, description='exact decimal string in currency units, at most two '
                                                   'decimals, e.g. "50.00" (no exponents, no floats)')
    method: str = Field(default=CASH, schema_extra={"pattern": METHOD_PATTERN},
                        description="cash, wechat, alipay, card or transfer")
    reference: str = Field(default="", max_length=100, description="the payment's own reference "
                                                                   "(WeChat/Alipay order, bank slip)")
    note: str = Field(default="", max_length=500)
    idempotency_key: Optional[str] = Field(default=None, schema_extra={"pattern": IDEMPOTENCY_PATTERN},
                                           description="the same key twice sells once (8-64 letters, digits, "
                                                       "_ . : -; e.g. a UUID made when the form was opened)")


class ReversalIn(Body):
    reason: str = Field(min_length=3, max_length=500, description="why the sale is reversed")
    idempotency_key: Optional[str] = Field(default=None, schema_extra={"pattern": IDEMPOTENCY_PATTERN})


class RefundIn(Body):
    amount: Optional[str] = Field(default=None, max_length=24,
                                  description="at most the balance; absent: the whole remaining credit")
    method: str = Field(default=CASH, schema_extra={"pattern": METHOD_PATTERN})
    reference: str = Field(default="", max_length=100)
    reason: str = Field(min_length=3, max_length=500)
    idempotency_key: Optional[str] = Field(default=None, schema_extra={"pattern": IDEMPOTENCY_PATTERN})


class AdjustmentIn(Body):
    amount: str = Field(max_length=24, description='signed decimal: "5.00" credits the account, "-5.00" debits it')
    reason: str = Field(min_length=3, max_length=500, description="mandatory: why")
    idempotency_key: Optional[str] = Field(default=None, schema_extra={"pattern": IDEMPOTENCY_PATTERN})
