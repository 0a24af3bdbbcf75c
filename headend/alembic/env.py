"""Alembic environment: the head-end's SQLModel metadata; batch mode on
SQLite (ALTER TABLE there means copy-and-move)."""
from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

from headend import models  # noqa: F401  (registers the tables)
from headend.core import partitions

config = context.config
target_metadata = SQLModel.metadata


def include_object_on(dialect):
    """What `alembic check` compares on this database: not the month
    partitions of the readings table (core/partitions.py), and of the
    model's constraints only those whose info["dialects"] names it."""
    def include_object(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None and partitions.is_partition_name(name):
            return False
        only = None if reflected else getattr(obj, "info", {}).get("dialects")
        return not only or dialect in only
    return include_object


def _configure(connection):
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True, include_object=include_object_on(connection.dialect.name))


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
