"""The audit log: append-only (on PostgreSQL a trigger refuses UPDATE and
DELETE; on SQLite too). Who, when, from where, what, before -> after."""
from typing import Any, Optional

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from .base import big, now_s


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: Optional[int] = Field(default=None, primary_key=True)
    ts: int = big(default_factory=now_s, index=True)
    user_id: Optional[int] = Field(default=None, foreign_key="app_user.id", index=True)
    username: str = Field(default="", max_length=64)      # as typed, also for failed logins
    actor_kind: str = Field(default="user", max_length=16)   # user, device, system, anonymous
    ip: str = Field(default="", max_length=64)
    action: str = Field(index=True, max_length=64)         # e.g. login.failed, money.sale
    object_type: str = Field(default="", max_length=32)
    object_id: str = Field(default="", max_length=64)
    property_id: Optional[int] = Field(default=None, foreign_key="property.id", index=True)
    before: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    detail: str = Field(default="", max_length=1000)


class AuditLogPublic(SQLModel):
    id: int
    ts: int
    user_id: Optional[int]
    username: str
    actor_kind: str
    ip: str
    action: str
    object_type: str
    object_id: str
    property_id: Optional[int]
    before: Optional[dict[str, Any]]
    after: Optional[dict[str, Any]]
    detail: str
