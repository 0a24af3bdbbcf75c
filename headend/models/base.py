"""What every table shares: integers for money (mu), energy (Wh) and time
(Unix seconds UTC), stored as BIGINT."""
import time

from pydantic import ConfigDict
from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

MAX_ID = 2 ** 31 - 1


def now_s() -> int:
    return int(time.time())


def big(**kw):
    """A BIGINT column (money, energy, time)."""
    return Field(sa_type=BigInteger, **kw)


class Body(SQLModel):
    """A request body: unknown fields and wrong JSON types are refused (no
    "5" for 5, no 5.0 for 5)."""
    model_config = ConfigDict(extra="forbid", strict=True)
