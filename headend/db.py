"""Engine and sessions; SQLite (WAL, the embedded default) and PostgreSQL."""
import os

from sqlalchemy import event, inspect, text
from sqlmodel import Session, SQLModel, create_engine

from . import models  # noqa: F401  (registers the tables)


def make_engine(url, echo=False):
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _rec):
            # Let SQLAlchemy (not the sqlite3 module) emit BEGIN; see _on_begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # IMMEDIATE: take the write lock at BEGIN, so a transaction never
            # fails half-way when it upgrades from reading to writing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True)


def init_db(engine):
    SQLModel.metadata.create_all(engine)
    add_missing_columns(engine)


def add_missing_columns(engine):
    """Minimal forward migration for databases created by an older head-end:
    add the nullable columns a newer model has (ALTER TABLE ... ADD COLUMN).
    Returns the "table.column" names added."""
    added = []
    insp = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            if not col.nullable:
                raise RuntimeError("cannot add NOT NULL column %s.%s to an existing table"
                                   % (table.name, col.name))
            ddl = "ALTER TABLE %s ADD COLUMN %s %s" % (
                engine.dialect.identifier_preparer.quote(table.name),
                engine.dialect.identifier_preparer.quote(col.name),
                col.type.compile(dialect=engine.dialect))
            with engine.begin() as conn:
                conn.execute(text(ddl))
            added.append("%s.%s" % (table.name, col.name))
    return added


class SessionFactory:
    """Callable returning a new Session bound to the engine."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self):
        return Session(self.engine, expire_on_commit=False)


def session_factory(engine):
    return SessionFactory(engine)
