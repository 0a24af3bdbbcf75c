"""Issue 13: the ingest and API benchmarks run at their --quick sizes and
print every figure; their correctness figures hold (every reading stored
once and billed, balances equal to the ledger, board and head-end agree).
Their speed goals are the benchmarks' business, not this test's."""
from tools.bench.__main__ import main

INGEST = ("ingest_readings_per_s_sqlite", "ingest_readings_per_s_postgres", "ingest_vs_naive_ratio_postgres",
          "ingest_vs_bulk_ratio_postgres", "ingest_age_ratio_postgres", "ingest_fleet_readings_per_s_postgres")
API = ("api_staff_page_p95_ms", "api_meter_list_p95_ms")


def figures(out):
    return {k: float(v) for k, v in (line.split(": ", 1) for line in out.splitlines() if ": " in line)}


def test_ingest_and_api_benchmarks_print_their_figures(capsys):
    assert main(["ingest", "api", "--quick"]) == 0
    f = figures(capsys.readouterr().out)
    for k in INGEST + API:
        assert k in f and f[k] > 0, (k, f)
    assert f["ingest_errors"] == 0, f
    # the baseline and the bound are measured on the same rows: COPY must beat one INSERT per commit
    assert f["ingest_bulk_per_s_postgres"] > f["ingest_naive_per_s_postgres"], f
    assert f["api_meter_list_bytes"] < 200_000, f       # one page, not the whole property


FLEET = ("fleet_concentrators_realtime", "fleet_concentrators_burst", "fleet_msgs_per_s")


def test_fleet_benchmark_prints_its_figures(capsys):
    """Boards through Mosquitto into two `wattkeeper worker` processes on
    PostgreSQL: every reading stored once, balances equal to the ledger, no
    downlink out of counter order; what the broker dropped and the
    downlinks lost are figures of their own; the search says where it
    ended (the smallest fleet that did not keep up, 0: none)."""
    assert main(["fleet", "--quick"]) == 0
    f = figures(capsys.readouterr().out)
    for k in FLEET:
        assert k in f and f[k] > 0, (k, f)
    assert 0 <= f["fleet_resend_fraction"] <= 1, f
    for k in ("fleet_broker_dropped", "fleet_downlinks_lost", "fleet_downlink_duplicates"):
        assert f[k] >= 0, (k, f)
    assert f["fleet_downlinks"] > 0, f
    assert f["fleet_concentrators_failed"] >= 0 and f["fleet_run_s"] > 0, f
    assert f["fleet_errors"] == 0, f
