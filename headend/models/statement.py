"""Monthly statements (账单): a run issues the statements of a property's
accounts for one local calendar month; each statement keeps the month's
numbers as issued (opening, each kind of movement, closing, energy). The
PDF is rendered from the ledger and the readings when it is downloaded
(services/statements.py, web/statement_doc.py)."""
from typing import Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from .base import MONTH_PATTERN, Body, big, id_field, now_s

RUNNING, DONE, FAILED = "running", "done", "failed"


class StatementRun(SQLModel, table=True):
    __tablename__ = "statement_run"
    id: Optional[int] = Field(default=None, primary_key=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    month: str = Field(max_length=7)              # "2026-11", the property's local calendar
    status: str = Field(default=RUNNING, max_length=16)
    total: int = 0                                # accounts to do
    done: int = 0                                 # statements issued so far
    started: int = big(default_factory=now_s)
    finished: Optional[int] = big(default=None)
    user_id: int = Field(foreign_key="app_user.id")
    error: str = Field(default="", max_length=500)


class Statement(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("account_id", "month", name="uq_statement_account_month"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="statement_run.id", index=True)
    property_id: int = Field(foreign_key="property.id", index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    month: str = Field(max_length=7)
    opening_mu: int = big()
    closing_mu: int = big()
    movements: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))   # {ledger kind: mu}
    energy_wh: int = big(default=0)
    issued: int = big(default_factory=now_s)


class StatementRunIn(Body):
    property_id: int = id_field()
    month: str = Field(schema_extra={"pattern": MONTH_PATTERN}, max_length=7, description='"2026-11"')


class StatementRunPublic(SQLModel):
    id: int
    property_id: int
    month: str
    status: str
    total: int
    done: int
    started: int
    finished: Optional[int]
    error: str
