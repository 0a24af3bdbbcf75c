import pytest

from tools.pgtemp import PG_ADMIN, temp_database  # noqa: F401  (PG_ADMIN: for tests that connect as admin)


def pg_database():
    """A fresh PostgreSQL database on the local server: (URL, drop function)."""
    return temp_database("wk_test_")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """The head-end's engine on SQLite and on a fresh PostgreSQL database."""
    from headend.core import db, migrate
    if request.param == "sqlite":
        url, drop = "sqlite:///" + str(tmp_path / "wk.db"), None
    else:
        url, drop = pg_database()
    eng = db.make_engine(url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()
    if drop:
        drop()
