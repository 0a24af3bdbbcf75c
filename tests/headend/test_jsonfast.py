"""core/jsonfast reads what the standard library reads: the same values,
the same types (an uplink's out-of-range integer must stay an int for the
range checks to name it)."""
import json

import pytest

from headend.core import jsonfast

TEXTS = ['{"n": 18446744073709551616}', '[-9223372036854775809, 9223372036854775807]', '[1.5, "x", null, true]',
         '{"v": [99999999999999999999999, 0]}', '1e400', '[1.2345678901234567890123]', '{"a": {"b": [1, 2]}}']


@pytest.mark.parametrize("text", TEXTS)
def test_values_and_types_match_the_standard_library(text):
    for t in (text, text.encode()):
        got, want = jsonfast.loads(t), json.loads(t)
        assert got == want and repr(got) == repr(want)


def test_not_json_raises_the_standard_error():
    with pytest.raises(json.JSONDecodeError):
        jsonfast.loads(b'{"n": 1')
