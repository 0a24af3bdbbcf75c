"""The downlink outbox: messages to boards that a person caused (a sale, a
tariff change, a relay override...), written in the same transaction as
their cause and published by the head-end's MQTT service in counter order.
So every entry point (dashboard, API, CLI, payment callback) reaches the
board, also when it runs in another process."""
from typing import Optional

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from .base import big, now_s


class Downlink(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    concentrator_id: int = Field(foreign_key="concentrator.id", index=True)
    n: int = big()                              # the downlink counter sealed in it
    topic: str = Field(max_length=100)
    payload: bytes = Field(sa_type=LargeBinary)
    created: int = big(default_factory=now_s)
    sent: Optional[int] = big(default=None, index=True)
