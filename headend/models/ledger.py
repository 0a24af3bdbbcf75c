"""The money ledger: every movement of money is one entry, never edited or
deleted (a correction is a new entry linked to the one it corrects). Each
entry names who caused it: an authenticated person (user_id) or a board
(concentrator_id)."""
from typing import Optional

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, text
from sqlmodel import Field, SQLModel

from .base import big, now_s

RECHARGE = "recharge"          # a sale of credit (售电)
REVERSAL = "reversal"          # a reversed sale (冲正): minus the sale, linked to it
REFUND = "refund"              # remaining credit paid back (退费)
CONSUMPTION = "consumption"    # energy charged from a reading
APPORTIONMENT = "apportionment"   # a share of common-area or loss consumption (公摊)
ADJUSTMENT = "adjustment"      # a manager's correction, with a reason
LEDGER_KINDS = (RECHARGE, REVERSAL, REFUND, CONSUMPTION, APPORTIONMENT, ADJUSTMENT)

# where a movement came from
SOURCES = ("desk", "api", "cli", "payment", "ingest", "system", "import")
_BY_A_PERSON = text("user_id IS NOT NULL")       # the entries ix_ledger_entry_user_id holds


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entry"
    __table_args__ = (CheckConstraint("user_id IS NOT NULL OR concentrator_id IS NOT NULL",
                                      name="ck_ledger_entry_actor"),
                      # foreign keys on SQLite; on PostgreSQL the same references are checked once
                      # per statement (core/statement_refs.py, migration 0015)
                      ForeignKeyConstraint(["account_id"], ["account.id"], info={"dialects": ("sqlite",)}),
                      ForeignKeyConstraint(["concentrator_id"], ["concentrator.id"],
                                           info={"dialects": ("sqlite",)}),
                      # only the entries a person made: a board's (nearly all) have no user (migration 0016)
                      Index("ix_ledger_entry_user_id", "user_id", postgresql_where=_BY_A_PERSON,
                            sqlite_where=_BY_A_PERSON))
    id: Optional[int] = Field(default=None, primary_key=True)
    account_id: int = Field(index=True)                  # account.id (see __table_args__)
    kind: str = Field(max_length=16)            # one of LEDGER_KINDS
    amount_mu: int = big()                      # signed: + credit, - debit
    balance_after_mu: int = big()
    user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")   # indexed: __table_args__
    concentrator_id: Optional[int] = Field(default=None)  # concentrator.id
    source: str = Field(default="api", max_length=16)
    related_entry_id: Optional[int] = Field(default=None, foreign_key="ledger_entry.id")
    reference: str = Field(default="", max_length=200)   # e.g. "reading:42/seq:7"
    note: str = Field(default="", max_length=500)
    created: int = big(default_factory=now_s)


class LedgerEntryPublic(SQLModel):
    id: int
    account_id: int
    kind: str
    amount_mu: int
    amount: str = ""
    balance_after_mu: int
    user_id: Optional[int]
    username: Optional[str] = None
    concentrator_id: Optional[int]
    source: str
    related_entry_id: Optional[int]
    reference: str
    note: str
    created: int
