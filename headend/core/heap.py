"""The Python heap of a long-running head-end process (serve, worker).

CPython's cyclic garbage collector walks every tracked object of the oldest
generation on each full collection. After start-up that is ~200,000 objects
of code the process never frees (SQLAlchemy, FastAPI, pydantic, the models),
and the ingest allocates enough per message to trigger those collections
often: they cost ~30 % of an ingest worker's time (python -m tools.bench
ingest, SQLite). settle() moves what start-up allocated out of the
collector's reach (gc.freeze, the standard library's way for servers): it is
never freed anyway. Objects allocated afterwards are collected as before.

The youngest generation is collected after YOUNG_OBJECTS allocations
instead of CPython's 700: a batch of the ingest holds ~2,000 readings, their
ledger entries and rollup buckets alive until its commit, and at 700 they
were walked again and again on their way to the oldest generation (which,
the start-up frozen, stays small enough for full collections to come often).
On the SQLite batch path: 368,700 -> 354,800 instructions a reading, the
same as with no collector at all (cachegrind, docs/scale-design.md)."""
import gc

YOUNG_OBJECTS = 20_000     # allocations (less deallocations) between two collections of the youngest generation


def settle():
    """Call once, when start-up is done (imports, migrations, the app built):
    -> the number of objects moved out of the collector's reach."""
    gc.collect()
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, older, oldest)
    return gc.get_freeze_count()
