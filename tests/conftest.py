import fcntl
import os
import tempfile

import pytest

from tools.pgtemp import PG_ADMIN, temp_database  # noqa: F401  (PG_ADMIN: for tests that connect as admin)


def pg_database():
    """A fresh PostgreSQL database on the local server: (URL, drop function)."""
    return temp_database("wk_test_")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request, tmp_path):
    """An engine on an empty SQLite file and on a fresh PostgreSQL database."""
    from headend.core import db
    if request.param == "sqlite":
        url, drop = "sqlite:///" + str(tmp_path / "wk.db"), None
    else:
        url, drop = pg_database()
    eng = db.make_engine(url)
    yield eng
    eng.dispose()
    if drop:
        drop()


@pytest.fixture
def engine(empty_engine):
    """The head-end's engine, migrated, on SQLite and on PostgreSQL."""
    from headend.core import migrate
    migrate.upgrade(empty_engine)
    return empty_engine


@pytest.fixture
def pg():
    """A migrated fresh PostgreSQL database, (URL, engine): for tests that
    start head-end worker processes on it."""
    from headend.core import db, migrate
    url, drop = pg_database()
    eng = db.make_engine(url)
    migrate.upgrade(eng)
    yield url, eng
    eng.dispose()
    drop()


def assert_each_reading_stored_and_billed_once(engine, count, opening_wh, mu_per_wh):
    """`count` readings, each (board, seq) once, and every meter charged
    exactly its energy since `opening_wh` (billing is cumulative: a reading
    that arrives after a newer one is stored and already covered)."""
    from sqlalchemy import text
    with engine.connect() as c:
        n, distinct = c.execute(text("SELECT count(*), count(DISTINCT (concentrator_id, seq)) FROM reading")).one()
        assert n == distinct == count
        per_meter = c.execute(text("SELECT meter_id, max(energy_wh), sum(COALESCE(billed_mu, 0)) FROM reading "
                                   "GROUP BY meter_id")).all()
        assert all(mu == (wh - opening_wh) * mu_per_wh for _m, wh, mu in per_meter), per_meter
    return per_meter


# tools/test.sh runs the suite on two xdist workers, each test file whole
# on one (`--dist loadfile`: its order and module fixtures kept). The files
# that use the machine's own Mosquitto (127.0.0.1:1883) with fixed device
# names take turns: each holds a lock file while it runs (one on the other
# worker, or in another checkout's suite, waits). Every other file starts its
# own brokers and databases, on free ports and under fresh names.
SYSTEM_BROKER_FILES = ("tests/firmware/test_console.py", "tests/headend/test_desk_defects.py",
                       "tests/headend/test_mqtt.py", "tests/sim/test_vboard.py", "tests/tools/test_provision.py")
SYSTEM_BROKER_LOCK = os.path.join(tempfile.gettempdir(), "wattkeeper-tests-system-broker.lock")


@pytest.fixture(scope="module", autouse=True)
def system_broker_turn(request):
    """The machine's Mosquitto to this test file alone, while it runs
    (autouse: set up before the file's own module fixtures)."""
    if request.node.nodeid.split("::", 1)[0] not in SYSTEM_BROKER_FILES:
        yield
        return
    with open(SYSTEM_BROKER_LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
