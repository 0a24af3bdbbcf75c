"""python -m tools.bench [NAME ...] [--quick]

Runs the named benchmarks (all of them without a name) and prints one
`metric_name: value` line per figure. --quick gives a CI-sized run.
"""
import argparse
import importlib
import sys
import time

# name -> module under tools.bench providing run(quick: bool) -> dict
BENCHMARKS = {
    "site": "tools.bench.site_bench",
    "journal": "tools.bench.journal_bench",
    "powercut": "tools.bench.powercut_bench",
    "recharge": "tools.bench.recharge_bench",
    "heap": "tools.bench.heap_bench",
    "heap_parts": "tools.bench.heap_parts",
    "bus": "tools.bench.bus_bench",
    "ota": "tools.bench.ota_bench",
    "alerts": "tools.bench.alerts_bench",
    "desk": "tools.bench.desk_bench",
    "ingest": "tools.bench.ingest_bench",
    "api": "tools.bench.api_bench",
    "fleet": "tools.bench.fleet_bench",
    "reports": "tools.bench.reports",
    "statements": "tools.bench.statements",
}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[1])
    ap.add_argument("names", nargs="*", help="benchmarks to run: " + ", ".join(BENCHMARKS))
    ap.add_argument("--quick", action="store_true", help="CI-sized run")
    args = ap.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    bad = [n for n in names if n not in BENCHMARKS]
    if bad:
        ap.error("unknown benchmark(s): %s (known: %s)" % (", ".join(bad), ", ".join(BENCHMARKS)))
    failed = 0
    for name in names:
        try:
            mod = importlib.import_module(BENCHMARKS[name])
        except ImportError as e:
            print("# %s: not available (%s)" % (name, e), file=sys.stderr)
            failed += 1
            continue
        t0 = time.monotonic()
        metrics = mod.run(quick=args.quick)
        for k, v in metrics.items():
            if isinstance(v, float):
                v = round(v, 4)
            print("%s: %s" % (k, v), flush=True)
        print("# %s took %.1f s" % (name, time.monotonic() - t0), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
