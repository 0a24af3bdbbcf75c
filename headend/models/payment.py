"""Online top-ups: a payment order a tenant (or staff) opens with a payment
provider (WeChat Pay, Alipay style; headend/payments), and every verified
notification the provider sent about it. A confirmed payment becomes a sale
through services.sales, once: the provider's transaction id is unique."""
from typing import Any, Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import Body, big, now_s

PENDING, PAID, FAILED = "pending", "paid", "failed"


class PaymentOrder(SQLModel, table=True):
    __tablename__ = "payment_order"
    __table_args__ = (UniqueConstraint("provider", "provider_txn_id", name="uq_payment_order_txn"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    order_no: str = Field(max_length=32, index=True, unique=True)     # ours, sent to the provider
    property_id: int = Field(foreign_key="property.id", index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    provider: str = Field(max_length=16)
    method: str = Field(max_length=16)                    # the receipt's method (wechat, alipay, ...)
    amount_mu: int = big()
    status: str = Field(default=PENDING, max_length=16)
    created_by_user_id: int = Field(foreign_key="app_user.id")    # who opened it: the sale names them
    created: int = big(default_factory=now_s)
    paid: Optional[int] = big(default=None)
    provider_txn_id: Optional[str] = Field(default=None, max_length=64)
    receipt_id: Optional[int] = Field(default=None, foreign_key="receipt.id")
    pay: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # what the payer needs


class PaymentNotice(SQLModel, table=True):
    """A provider's notification whose signature verified: (provider, nonce)
    is unique, so a replayed message is recognised."""
    __tablename__ = "payment_notice"
    __table_args__ = (UniqueConstraint("provider", "nonce", name="uq_payment_notice_nonce"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16)
    nonce: str = Field(max_length=64)
    ts: int = big()                                       # the provider's timestamp
    received: int = big(default_factory=now_s)
    order_no: str = Field(default="", max_length=32)
    provider_txn_id: str = Field(default="", max_length=64)
    outcome: str = Field(default="", max_length=32)       # sold, duplicate, failed, refused
    detail: str = Field(default="", max_length=500)


class TopUpIn(Body):
    amount: str = Field(max_length=24, description='exact decimal string, e.g. "50.00"')
    provider: str = Field(default="fake", max_length=16, description="a configured payment provider")


class PaymentOrderPublic(SQLModel):
    order_no: str
    account_id: int
    provider: str
    method: str
    amount_mu: int
    amount: str
    status: str
    created: int
    paid: Optional[int]
    receipt_id: Optional[int]
    pay: dict[str, Any]
