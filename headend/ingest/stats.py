"""Thread-safe ingest counters, exposed by /api/health and /metrics."""
import threading

from concentrator import protocol


class IngestStats:
    def __init__(self):
        self._lock = threading.Lock()
        self._c = {"received": 0, "accepted": 0, "rejected": 0, "errors": 0,
                   "records_stored": 0, "records_duplicate": 0, "bad_records": 0,
                   "readings_billed": 0, "readings_not_billed": 0, "downlinks": 0}
        for r in protocol.REJECT_REASONS:
            self._c["rejected_" + r] = 0

    def inc(self, name, k=1):
        with self._lock:
            self._c[name] = self._c.get(name, 0) + k

    def get(self, name):
        with self._lock:
            return self._c.get(name, 0)

    def snapshot(self):
        with self._lock:
            return dict(self._c)
