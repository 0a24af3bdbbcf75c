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
