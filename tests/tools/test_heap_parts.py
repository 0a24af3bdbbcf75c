"""tools.bench heap_parts: the breakdown of the firmware's live heap (as
deployed, 32 meters) adds up, and every per-meter part it names is there."""
from tools.bench import heap_parts

PER_METER = ("credit", "relay_state", "readings", "bus_stats", "times", "meter_objects",
             "meter_config", "journal")


def test_the_parts_add_up_to_the_live_heap():
    f = heap_parts.run()
    live = f["fw_heap_live_bytes"]
    parts = sum(v for k, v in f.items() if k.startswith("fw_part_"))
    # measured by difference, step by step: the sum is the live heap, give or
    # take what the measuring step itself holds
    assert abs(parts - live) <= 512, (parts, live, f)
    for name in PER_METER:
        # 32 meters: each part holds at least 16 B (one heap block) per meter
        assert f["fw_part_%s_bytes" % name] >= 32 * 16, (name, f)
    assert 40_000 < live < 200_000, f
