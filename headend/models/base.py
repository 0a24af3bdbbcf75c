"""What every table shares: integers for money (mu), energy (Wh) and time
(Unix seconds UTC), stored as BIGINT."""
import time
from typing import Annotated

from pydantic import ConfigDict
from pydantic import Field as PydanticField
from pydantic import model_validator
from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"   # a local calendar month, "2026-11"

MAX_ID = 2 ** 31 - 1


def now_s() -> int:
    return int(time.time())


# an id in a request body (a list of them: list[BodyId]); the same bound as api/deps.Id
BodyId = Annotated[int, PydanticField(ge=1, le=MAX_ID)]


def id_field(**kw):
    """A body field holding an id: 1..MAX_ID (so nothing past 2^31 reaches the database)."""
    return Field(ge=1, le=MAX_ID, **kw)


def big(**kw):
    """A BIGINT column (money, energy, time)."""
    return Field(sa_type=BigInteger, **kw)


def check_text(data, where="body"):
    """Every string anywhere in `data` is storable text: no NUL character
    (PostgreSQL text cannot hold one) and no lone surrogate (not UTF-8).
    Raises ValueError naming where."""
    if isinstance(data, str):
        if "\x00" in data:
            raise ValueError("%s: text must not contain NUL characters" % where)
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("%s: text is not valid Unicode (a lone surrogate)" % where)
    elif isinstance(data, dict):
        for k, v in data.items():
            check_text(k, where)
            check_text(v, "%s.%s" % (where, k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            check_text(v, "%s[%d]" % (where, i))
    return data


class Body(SQLModel):
    """A request body: unknown fields and wrong JSON types are refused (no
    "5" for 5, no 5.0 for 5), and so is text no database stores (check_text)."""
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data):
        return check_text(data)
