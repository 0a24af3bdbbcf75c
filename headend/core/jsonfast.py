"""JSON on the ingest's path (every uplink's body; the database's JSON
columns: every meter's tariff accumulators, read and written for every
message): orjson, a C
library ~4x the standard library's speed, and the standard library for
what orjson refuses or reads otherwise (integers beyond 64 bits, keys that are not strings).
The text differs in spacing only; what is read back is the same."""
import json

import orjson


# orjson reads an integer beyond 64 bits as a float (2**64 -> 1.8e19): text
# with a run of 19 digits or more (-2**63 has 19) goes to the standard
# library, which keeps every integer an int, as the board's and the range
# checks' JSON does. Found with translate + find (C loops; a regex costs
# as much as the standard library's decoding).
_DIGITS_AS_0 = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19


def _long_digits(text):
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    return bytes(text).translate(_DIGITS_AS_0).find(_RUN) >= 0


def loads(text):
    if not _long_digits(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)          # raises the standard error when it really is not JSON


def dumps(obj):
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj)
