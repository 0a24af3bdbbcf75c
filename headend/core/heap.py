"""The Python heap of a long-running head-end process (serve, worker).

CPython's cyclic garbage collector walks every tracked object of the oldest
generation on each full collection. After start-up that is ~200,000 objects
of code the process never frees (SQLAlchemy, FastAPI, pydantic, the models),
and the ingest allocates enough per message to trigger those collections
often: they cost ~30 % of an ingest worker's time (python -m tools.bench
ingest, SQLite). settle() moves what start-up allocated out of the
collector's reach (gc.freeze, the standard library's way for servers): it is
never freed anyway. Objects allocated afterwards are collected as before."""
import gc


def settle():
    """Call once, when start-up is done (imports, migrations, the app built):
    -> the number of objects moved out of the collector's reach."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
