"""Per-dialect connection set-up for the engine Flask-SQLAlchemy creates."""

from sqlalchemy import Engine, event


def engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {}
    # pre_ping notices connections a database restart killed; recycle stays
    # under MySQL's default wait_timeout on idle pooled connections.
    return {"pool_pre_ping": True, "pool_recycle": 280, "pool_size": 4, "max_overflow": 4}


def configure(engine: Engine, lock_timeout: int) -> None:
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, lock_timeout)
    elif engine.dialect.name in ("mysql", "mariadb"):
        _configure_mysql(engine, lock_timeout)


def _configure_mysql(engine: Engine, lock_timeout: int) -> None:
    seconds = max(1, int(lock_timeout))

    @event.listens_for(engine, "connect")
    def bounded_lock_waits(dbapi_connection, _record):
        # The server defaults are a year (metadata locks) and 50 s (row locks):
        # a stuck lock would hang every worker for that long.
        with dbapi_connection.cursor() as cursor:
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
