"""The bus's per-meter counters (modbus.Stats): rows of one table that read
and write like the dict they replace, one meter's counts never in another's."""
from tests.support import ROOT  # noqa: F401  (puts firmware/ on the path)
from concentrator import modbus  # noqa: E402
from concentrator.meters import MeterBus  # noqa: E402


class _Hal:
    pass


def test_each_meter_counts_in_its_own_row():
    meters = [{"id": "A", "addr": 1, "model": "prepaid-int"},
              {"id": "B", "addr": 2, "model": "prepaid-int"}]
    bus = MeterBus(_Hal(), meters)
    a, b = bus.stats(0), bus.stats(1)
    a["timeouts"] += 3
    b["requests"] += 1
    a["offline"] = True
    assert (a["timeouts"], a["requests"], b["timeouts"], b["requests"]) == (3, 0, 0, 1)
    assert a["offline"] is True and b["offline"] is False and not bus.online(0) and bus.online(1)
    assert a["rtt_ms"] == -1 and b.get("rtt_ms") == -1     # latency unknown until a reply
    assert a.get("no such counter", 7) == 7
    assert dict(a.items())["timeouts"] == 3 and set(a.keys()) >= set(modbus.STAT_KEYS)
    assert a.table is b.table                               # one table for the bus


def test_a_meter_on_its_own_gets_its_own_counters():
    st = modbus.stats_of({"addr": 5})
    st["crc"] += 1
    assert st["crc"] == 1 and modbus.new_stats()["crc"] == 0
