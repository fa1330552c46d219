import psycopg


def test_each_test_gets_its_own_empty_database(db: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE mine (id bigint)")
    name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None and name[0].startswith("lockgate_test_")
    assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (1,)


def test_databases_are_isolated(db: str, conn: psycopg.Connection) -> None:
    # The previous test's table must not be here.
    assert conn.execute("SELECT to_regclass('public.mine')").fetchone() == (None,)


def test_throwaway_server_listens_on_loopback_only(pg_server: object, conn: psycopg.Connection) -> None:
    if getattr(pg_server, "process", None) is None:
        return  # LOCKGATE_TEST_DSN names a server we did not start
    setting = conn.execute("SELECT current_setting('listen_addresses'), current_setting('fsync')").fetchone()
    assert setting == ("127.0.0.1", "off")
