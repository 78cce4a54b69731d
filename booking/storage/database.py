"""Per-dialect connection set-up for the engine Flask-SQLAlchemy creates."""

from sqlalchemy import Engine, event


def engine_options(url: str, lock_timeout: int, pool_size: int = 4) -> dict:
    if url.startswith("sqlite"):
        return {}
    # Bounded socket waits: a database that stops answering (not even a RST)
    # must turn into a 503, not a worker stuck until gunicorn kills it. A
    # statement may legitimately wait for locks, and LOCK TABLES waits up to
    # lock_timeout once per table it names (six), so allow that.
    io_timeout = 6 * max(1, int(lock_timeout)) + 5
    return {
        # pre_ping notices connections a database restart killed; recycle stays
        # under MySQL's default wait_timeout on idle pooled connections.
        "pool_pre_ping": True,
        "pool_recycle": 280,
        # One connection per thread that may read at once, a few more for bursts.
        "pool_size": pool_size,
        "max_overflow": 4,
        "pool_timeout": max(1, int(lock_timeout)),
        "connect_args": {
            "connect_timeout": 3,
            "read_timeout": io_timeout,
            "write_timeout": io_timeout,
        },
    }


def ping(engine: Engine) -> None:
    """Raise if the database does not answer a trivial query."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


class GaleraTableLockError(RuntimeError):
    def __init__(self):
        super().__init__(
            "This database is a Galera cluster node (wsrep_on=ON): LOCK TABLES does not"
            " protect anything across its nodes. Set BOOKING_LOCK=row."
        )


def configure(engine: Engine, lock_timeout: int, lock_mode: str = "table") -> None:
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, lock_timeout)
    elif engine.dialect.name in ("mysql", "mariadb"):
        _configure_mysql(engine, lock_timeout, lock_mode)


def _is_galera(cursor) -> bool:
    cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
    row = cursor.fetchone()
    return bool(row) and str(row[1]).upper() == "ON"


def check_not_galera(engine: Engine) -> None:
    """At start-up in table mode: refuse a Galera node. Quiet if the database is down."""
    try:
        with engine.connect():
            pass
    except GaleraTableLockError:
        raise
    except Exception:  # readiness reports an unreachable database
        return


def _configure_mysql(engine: Engine, lock_timeout: int, lock_mode: str) -> None:
    seconds = max(1, int(lock_timeout))

    @event.listens_for(engine, "connect")
    def per_session_settings(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            if _is_galera(cursor):
                if lock_mode == "table":
                    raise GaleraTableLockError()
                # A read on any node waits until the node has applied every
                # write committed anywhere before it: status sees a booking made
                # through another host.
                cursor.execute("SET SESSION wsrep_sync_wait = 1")
            # The server defaults are a year (metadata locks) and 50 s (row locks):
            # a stuck lock would hang every worker for that long.
            cursor.execute(
                "SET SESSION lock_wait_timeout = %s, innodb_lock_wait_timeout = %s",
                (seconds, seconds),
            )


def _configure_sqlite(engine: Engine, lock_timeout: int) -> None:
    @event.listens_for(engine, "connect")
    def pragmas(dbapi_connection, _record):
        # Take over transaction control from pysqlite so BEGIN IMMEDIATE is ours to send.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {max(1, int(lock_timeout)) * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn):
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
