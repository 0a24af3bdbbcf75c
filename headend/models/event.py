"""Events: the boards' (relay opened, meter offline, ...) and the head-end's
own (rejected uplinks, billing mismatches, commands sent)."""
from typing import Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import big, now_s


class Event(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("concentrator_id", "seq", name="uq_event_conc_seq"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    concentrator_id: Optional[int] = Field(default=None, foreign_key="concentrator.id", index=True)
    seq: Optional[int] = big(default=None)     # journal seq (None: head-end's own event)
    meter_index: Optional[int] = None
    meter_id: Optional[int] = Field(default=None, foreign_key="meter.id")
    code: int
    detail: Optional[int] = None
    values: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    ts: int = big(default_factory=now_s)
    message: str = ""
    user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")   # who asked (commands)
    received: int = big(default_factory=now_s)


class EventPublic(SQLModel):
    id: int
    concentrator_id: Optional[int]
    seq: Optional[int]
    meter_index: Optional[int]
    meter_id: Optional[int]
    code: int
    detail: Optional[int]
    values: list[int]
    ts: int
    message: str
    user_id: Optional[int]
