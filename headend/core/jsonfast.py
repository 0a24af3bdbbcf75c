"""JSON of the database's JSON columns on the ingest's path (every meter's
tariff accumulators, read and written for every message): orjson, a C
library ~4x the standard library's speed, and the standard library for
what orjson refuses (integers beyond 64 bits, keys that are not strings).
The text differs in spacing only; what is read back is the same."""
import json

import orjson


def loads(text):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)          # raises the standard error when it really is not JSON


def dumps(obj):
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj)
