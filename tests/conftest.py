import uuid

import pytest

PG_ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")


def pg_database():
    """A fresh PostgreSQL database on the local server: (URL, drop function)."""
    import psycopg2
    name = "wk_test_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(**PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE " + name)
    conn.close()

    def drop():
        c = psycopg2.connect(**PG_ADMIN)
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        c.close()
    return "postgresql+psycopg2://postgres@127.0.0.1:5432/" + name, drop


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
