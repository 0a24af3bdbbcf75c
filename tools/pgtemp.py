"""A throwaway PostgreSQL database on the local server (127.0.0.1:5432,
trust authentication), for tests and benchmarks.

    url, drop = temp_database()      # postgresql+psycopg2://postgres@127.0.0.1:5432/wk_test_...
    ...
    drop()
"""
import uuid

PG_ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")


def temp_database(prefix="wk_test_"):
    import psycopg2
    name = prefix + uuid.uuid4().hex[:12]
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
