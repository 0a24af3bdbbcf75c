"""Concentrators: the boards. A board's key signs every message both ways;
its counters make replays fail (docs/protocol.md)."""
from typing import Any, Optional

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from .base import Body, big, id_field, now_s

DEV_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Concentrator(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    dev: str = Field(index=True, unique=True)  # device id = MQTT topic segment
    property_id: Optional[int] = Field(default=None, foreign_key="property.id", index=True)
    # the CONFIRMED key: the last key the board was seen to use; every downlink
    # is sealed with it (concentrator.keyring.ServerKeys, docs/protocol.md)
    key_hex: str                                  # 32-byte HMAC key, hex
    last_up_n: int = big(default=-1)              # highest accepted uplink counter
    last_down_n: int = big(default=0)             # last downlink counter used
    # rekeys the board has not confirmed yet: [[nonce hex, key hex], ...], newest last
    key_pending: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rekey_started: Optional[int] = big(default=None)
    rekey_sent_at: Optional[int] = big(default=None)   # when the pending rekey was last sent
    acked_seq: int = big(default=0)               # highest contiguous committed seq
    # highest seq stored (a reading or an event): a batch wholly above it has
    # nothing stored yet, and the ack needs no look at the readings
    top_seq: int = big(default=0, sa_column_kwargs={"server_default": "0"})
    # anti-replay window (ingest/envelope.py): bit i set = counter last_up_n - 1 - i seen
    up_window: int = big(default=0, sa_column_kwargs={"server_default": "0"})
    last_seen: Optional[int] = big(default=None)
    online: bool = False
    fw: Optional[str] = None
    code: Optional[str] = None                    # id of the code the board runs (hello.code)
    boot: Optional[int] = None
    journal_last: Optional[int] = big(default=None)   # board's highest seq written
    pending: Optional[int] = None                     # board's unacked records
    created: int = big(default_factory=now_s)


class ConcentratorCreate(Body):
    property_id: int = id_field()
    dev: str = Field(min_length=1, max_length=64, schema_extra={"pattern": DEV_PATTERN})
    key_hex: Optional[str] = Field(default=None, schema_extra={"pattern": r"^[0-9a-fA-F]{64}$"},
                                   description="32-byte key as hex; generated when omitted")


class ConcentratorPublic(SQLModel):
    id: int
    dev: str
    property_id: Optional[int]
    acked_seq: int
    last_up_n: int
    last_down_n: int
    last_seen: Optional[int]
    online: bool
    fw: Optional[str]
    boot: Optional[int]
    journal_last: Optional[int]
    pending: Optional[int]
    rekey_pending: bool = False


class ConcentratorCreated(ConcentratorPublic):
    """The answer to provisioning: the only time the key is shown."""
    key_hex: str
